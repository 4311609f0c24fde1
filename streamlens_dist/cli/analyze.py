"""`streamlens-dist analyze`: run the analysis and print a summary."""

from __future__ import annotations

import json
import math

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..api import Summary, analyze
from ..errors import SettingsError
from ..ienakeys import load_key_map
from ..results import Tables, top_flows, top_streams
from ..settings import DEFAULT_CHUNK_SIZE, parse_duration, parse_sigma, parse_size
from . import EXIT_DATA_PROBLEMS, EXIT_OK, cli

_PHASES = {"split": "split", "dissect": "dissect chunks", "merge": "merge partials",
           "outliers": "outlier pass"}


def _size(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _sigma(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return parse_sigma(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _bin(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _storage(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict | None:
    if value is None:
        return None
    try:
        opts = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from exc
    if not isinstance(opts, dict):
        raise click.BadParameter('a JSON object, e.g. \'{"endpoint_url": "http://minio:9000"}\'')
    return opts


def _key_map(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple | None:
    if value is None:
        return None
    try:
        return load_key_map(value)
    except SettingsError as exc:
        raise click.BadParameter(str(exc)) from exc


@cli.command("analyze")
@click.argument("paths", nargs=-1, required=True)
@click.option("-o", "--output", "store", required=True,
              help="Zarr store to write: a path or an fsspec URL (s3://bucket/flight-042.zarr).")
@click.option("--sigma", default="3", show_default=True, callback=_sigma,
              help="Outlier threshold k in mean + k*std (a decimal, taken exactly).")
@click.option("--chunk-size", default=str(DEFAULT_CHUNK_SIZE // 1024**2) + "MiB",
              show_default=True, callback=_size, help="Target chunk size: bytes or KiB/MiB/GiB.")
@click.option("--bin", "bin_ns", default="1s", show_default=True, callback=_bin,
              help="Time bin of the IAT series in the store (e.g. 100ms, 1s, 1min).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster [default: CPU count, at most 8].")
@click.option("--scheduler", default=None, metavar="ADDRESS", envvar="DASK_SCHEDULER_ADDRESS",
              help="Submit to this Dask scheduler (tcp://host:port) instead of a local cluster.")
@click.option("--serial", is_flag=True, help="Run in this process without Dask.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--profile", is_flag=True,
              help="Print where the time went: wall time per phase, worker time per step.")
@click.option("--iena-keys", "iena_keys", default=None, metavar="FILE", callback=_key_map,
              help="IENA key map (CSV `key,type[,name]` or YAML `key: type`): the packet type "
                   "of the listed keys (docs/STREAMS.md).")
@click.option("--checkpoint", default=None, metavar="DIR|URL",
              help="Keep each finished chunk's partial in DIR (or under an fsspec URL); a "
                   "rerun after a crash recomputes only what is missing.")
@click.option("--storage-options", "storage_options", default=None, metavar="JSON",
              callback=_storage, envvar="STREAMLENS_STORAGE_OPTIONS",
              help="fsspec options for URL captures, store and checkpoint, as a JSON object "
                   "(e.g. endpoint_url, key, secret); sent to the workers with the tasks. "
                   "Credentials are better left to the environment (AWS_* variables, roles).")
@click.option("--tls-ca-file", default=None, metavar="CA",
              help="Mutual TLS with a tls:// --scheduler: the CA (PEM) that signed the cluster's "
                   "certificates [default: dask config distributed.comm.tls.ca-file].")
@click.option("--tls-cert", default=None, metavar="CERT",
              help="This client's certificate (PEM) for a tls:// --scheduler.")
@click.option("--tls-key", default=None, metavar="KEY",
              help="The private key (PEM) of --tls-cert (omit if CERT holds it).")
def analyze_cmd(paths: tuple[str, ...], store: str, sigma: str, chunk_size: int, bin_ns: int,
                workers: int | None, scheduler: str | None, serial: bool, overwrite: bool,
                as_json: bool, quiet: bool, profile: bool, iena_keys: tuple | None,
                checkpoint: str | None, storage_options: dict | None,
                tls_ca_file: str | None, tls_cert: str | None, tls_key: str | None) -> int:
    """Analyse one capture (files of a rotated set or a glob count as one capture) into STORE.

    Captures are paths, globs or fsspec URLs (quote globs for the remote ones):

    \b
      streamlens-dist analyze flight-042/*.pcapng -o flight-042.zarr
      streamlens-dist analyze 's3://archive/flight-042/*.pcapng' -o s3://results/f042.zarr
    """
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=quiet or as_json,
                  transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        summary = analyze(list(paths), store, sigma=sigma, chunk_size=chunk_size,
                          workers=workers, scheduler=scheduler, serial=serial,
                          overwrite=overwrite, progress=progress, iena_keys=iena_keys,
                          tls=(tls_ca_file, tls_cert, tls_key), checkpoint=checkpoint,
                          storage_options=storage_options, bin=bin_ns,
                          on_cluster=None if quiet or as_json else
                          lambda link: console.print(f"Dask dashboard: {link}",
                                                     highlight=False))
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        out = Console(soft_wrap=True)  # long lines stay whole, for grep and logs
        print_summary(summary, out)
        if profile:
            print_profile(summary, out)
    return EXIT_DATA_PROBLEMS if summary.has_data_problems else EXIT_OK


def _ms(ns: float) -> str:
    return "-" if math.isnan(ns) else f"{ns / 1e6:.3f}"


def print_summary(s: Summary, console: Console) -> None:
    print_results(s.store, s.attrs, s.tables, console,
                  f", {s.chunks} chunks, {s.wall_s:.2f} s wall, {s.packets_per_s:,.0f} packets/s")
    timed = [(k, s.phases[k]) for k in _WALL if isinstance(s.phases.get(k), float)]
    console.print("time per phase: " + ", ".join(f"{k} {v:.2f} s" for k, v in timed),
                  highlight=False)
    if "checkpoint_hits" in s.phases:
        console.print(f"checkpoint: {s.phases['checkpoint_hits']} chunk(s) reused, "
                      f"{s.phases['checkpoint_stored']} computed and stored")


def print_results(store: str, a: dict, t: Tables, console: Console, run_facts: str = "") -> None:
    """A capture's results for people: counts, the worst flows and streams, the problems
    (`analyze` after a run, `report` from a store)."""
    console.print(
        f"[bold]{store}[/bold]: {a['frames']} frames in {len(a['files'])} file(s), "
        f"{len(t.flows['src'])} flows, {len(t.frame_types['flow'])} flow/frame-type rows, "
        f"{len(t.flow_outliers['frame'])} flow outliers (sigma {a['sigma']}){run_facts}")
    if a["undecodable_frames"] or a["untimed_frames"]:
        console.print(f"undecodable frames: {a['undecodable_frames']} (first: "
                      f"{a['undecodable_first_frames'][:5]}), untimed frames: {a['untimed_frames']}")
    top = [f for f in top_flows(t, 5) if f["outliers"]]
    if top:
        table = Table(title="Top flows by outliers")
        for col in ("src", "dst", "kind", "frames", "outliers", "mean IAT ms"):
            table.add_column(col, justify="right" if col[0] in "fom" else "left")
        for f in top:
            table.add_row(f["src"], f["dst"], f["kind"], str(f["frames"]), str(f["outliers"]),
                          _ms(f["iat_mean_ns"]))
        console.print(table)
    for title, key in (("Worst streams by loss", "lost"), ("Worst streams by outliers", "outliers")):
        worst = [r for r in top_streams(t, 5, by=key) if r[key] > 0]
        if worst:
            table = Table(title=title)
            for col in ("flow", "stream", "msgs", "lost", "gaps", "late", "outliers", "IAT ms"):
                table.add_column(col, overflow="fold",
                                 justify="left" if col in ("flow", "stream") else "right")
            for r in worst:
                table.add_row(f"{r['src']} > {r['dst']}", f"{r['protocol']} {r['stream']}",
                              str(r["messages"]), str(r["lost"]), str(r["gap_count"]),
                              str(r["out_of_order"]), str(r["outliers"]), _ms(r["iat_mean_ns"]))
            console.print(table)
    problems = a["problems"]
    for p in problems[:MAX_PROBLEMS_SHOWN]:
        console.print(problem_line(p), markup=False, highlight=False)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        console.print(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems (all are in "
                      "the store's `problems` attribute)")
    if a["malformed_payloads"]:
        console.print(f"malformed payloads (counted per flow and protocol): "
                      f"{a['malformed_payloads']}", markup=False, highlight=False)


MAX_PROBLEMS_SHOWN = 50


def problem_line(p: dict) -> str:
    """One line per problem: severity, kind, where (file, byte offset, frame) and what it cost."""
    head = f"problem {p['kind']} ({p.get('severity', 'error')}):"
    if not p["frame"]:  # a whole input file: its message names it
        return f"{head} {p['message']}"
    return f"{head} {p['file']} at byte {p['offset']} (frame {p['frame']}): {p['message']}"


_WALL = ("split", "cluster_start", "dissect", "merge", "outliers", "cluster_stop", "tables",
         "write")
_WORKER = ("read", "walk", "classify", "messages", "stats", "outlier_pass")


def print_profile(s: Summary, console: Console) -> None:
    """Wall time per phase (client view) and summed worker time per step of a chunk task."""
    table = Table(title=f"Profile: {s.frames:,} frames, {s.wall_s:.3f} s wall")
    for col in ("phase", "seconds", "share"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for name in _WALL:
        if name in s.phases:
            sec = s.phases[name]
            table.add_row(name, f"{sec:.3f}", f"{100 * sec / s.wall_s:.0f}%")
    worker = s.phases.get("worker_seconds", {})
    busy = sum(worker.get(k, 0.0) for k in _WORKER)
    for name in _WORKER:
        if name in worker:
            table.add_row(f"  worker {name}", f"{worker[name]:.3f}",
                          f"{100 * worker[name] / busy:.0f}% of worker" if busy else "-")
    console.print(table)
    if "client_cpu" in s.phases:
        console.print(f"CPU of this process (client, scheduler, store writer; not the workers): "
                      f"{s.phases['client_cpu']:.3f} s")
    console.print(f"frames through the per-frame path: {int(worker.get('slow_path_frames', 0)):,}; "
                  f"chunks re-read by the outlier pass: {int(worker.get('chunks_reread', 0))}")
