"""`streamlens-dist analyze`: run the analysis and print a summary."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..api import Summary, analyze
from ..errors import SettingsError
from ..ienakeys import load_key_map
from ..results import STREAM_SUMMARY, Tables, top_flows, top_frame_types, top_streams
from ..settings import DEFAULT_CHUNK_SIZE, parse_duration, parse_sigma, parse_size
from . import EXIT_DATA_PROBLEMS, EXIT_OK, cli
from .output import console as output_console
from .output import echo_json, fmt_ms, print_table, progress_bar, results_table

DEFAULT_TOP = 10
MIN_RATE_WALL_S = 1.0  # a packet rate over less wall time than this measures start-up
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
@click.option("--top", default=DEFAULT_TOP, show_default=True, type=click.IntRange(min=1),
              help="Rows of each table of the summary (flows, frame types, streams).")
def analyze_cmd(paths: tuple[str, ...], store: str, sigma: str, chunk_size: int, bin_ns: int,
                workers: int | None, scheduler: str | None, serial: bool, overwrite: bool,
                as_json: bool, quiet: bool, profile: bool, iena_keys: tuple | None,
                checkpoint: str | None, storage_options: dict | None,
                tls_ca_file: str | None, tls_cert: str | None, tls_key: str | None,
                top: int) -> int:
    """Analyse one capture (files of a rotated set or a glob count as one capture) into STORE.

    Exit status: 0 clean; 3 completed, but the input had data problems (damaged records,
    files left out, malformed payloads: listed in the summary and the store); 1 failed,
    nothing written (no input could be analysed, the store exists without --overwrite, STORE
    is not a result store of ours, the output cannot be written); 2 bad usage.

    Captures are paths, globs or fsspec URLs (quote globs for the remote ones):

    \b
      streamlens-dist analyze flight-042/*.pcapng -o flight-042.zarr
      streamlens-dist analyze 's3://archive/flight-042/*.pcapng' -o s3://results/f042.zarr
    """
    console = output_console(stderr=True)
    with progress_bar(console, quiet or as_json, TextColumn("{task.description:<16}"),
                      BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
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
        echo_json(summary.to_dict())
    else:
        out = output_console()
        print_summary(summary, out, top)
        if profile:
            print_profile(summary, out)
    return EXIT_DATA_PROBLEMS if summary.has_data_problems else EXIT_OK


def print_summary(s: Summary, console: Console, top: int = DEFAULT_TOP) -> None:
    # a rate over a fraction of a second is start-up time, not speed
    rate = f", {s.packets_per_s:,.0f} packets/s" if s.wall_s >= MIN_RATE_WALL_S else ""
    print_results(s.store, s.attrs, s.tables, console, top,
                  f", {s.chunks} chunks, {s.wall_s:.2f} s wall{rate}")
    timed = [(k, s.phases[k]) for k in _WALL if isinstance(s.phases.get(k), float)]
    console.print("time per phase: " + ", ".join(f"{k} {v:.2f} s" for k, v in timed),
                  highlight=False)
    if "checkpoint_hits" in s.phases:
        console.print(f"checkpoint: {s.phases['checkpoint_hits']} chunk(s) reused, "
                      f"{s.phases['checkpoint_stored']} computed and stored")


def _shown(what: str, shown: int, total: int, order: str) -> str:
    return f"{what}: {total:,}" if shown == total else \
        f"{what}: {shown:,} of {total:,}, {order} first"


def print_results(store: str, a: dict, t: Tables, console: Console, top: int = DEFAULT_TOP,
                  run_facts: str = "") -> None:
    """A capture's results for people: counts, the flows, frame types and protocol streams
    (the `top` of each, worst first), the problems (`analyze` after a run, `report` from a
    store)."""
    console.print(
        f"[bold]{store}[/bold]: {a['frames']} frames in {len(a['files'])} file(s), "
        f"{len(t.flows['src'])} flows, {len(t.frame_types['flow'])} flow/frame-type rows, "
        f"{len(t.flow_outliers['frame'])} flow outliers (sigma {a['sigma']}){run_facts}")
    if a["undecodable_frames"] or a["untimed_frames"]:
        console.print(f"undecodable frames: {a['undecodable_frames']} (first: "
                      f"{a['undecodable_first_frames'][:5]}), untimed frames: {a['untimed_frames']}")
    iat = ["mean IAT ms", "std IAT ms", "max IAT ms"]

    def ms(r: dict) -> list[str]:
        return [fmt_ms(r["iat_mean_ns"]), fmt_ms(r["iat_std_ns"]), fmt_ms(r["iat_max_ns"])]

    flows = top_flows(t, top)
    if flows:
        print_table(console, results_table(
            _shown("Flows", len(flows), len(t.flows["src"]), "most outliers"),
            ["flow", "kind", "protocols", "frames", "outliers", *iat],
            [[f"{f['src']} > {f['dst']}", f["kind"], f["protocols"], f"{f['frames']:,}",
              f"{f['outliers']:,}", *ms(f)] for f in flows], 3))
    types = top_frame_types(t, top)
    if types:
        print_table(console, results_table(
            _shown("Frame types", len(types), len(t.frame_types["flow"]), "most outliers"),
            ["flow", "frame type", "frames", "outliers", *iat],
            [[f"{r['src']} > {r['dst']}", r["frame_type"], f"{r['frames']:,}",
              f"{r['outliers']:,}", *ms(r)] for r in types], 2))
    streams = top_streams(t, top, by="lost")
    if streams:
        print_table(console, results_table(
            _shown("Protocol streams", len(streams), len(t.streams["flow"]),
                   "most lost, then most late"),
            ["flow", "stream", *STREAM_SUMMARY.values()],
            [[f"{r['src']} > {r['dst']}", f"{r['protocol']} {r['stream']}",
              *(fmt_ms(r[k]) if k.endswith("_ns") else f"{r[k]:,}" for k in STREAM_SUMMARY)]
             for r in streams], 2))
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
