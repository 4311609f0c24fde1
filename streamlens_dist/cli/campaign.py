"""`streamlens-dist campaign init|discover|add|run|status|report`: many captures, one store.

Exit statuses (cli/__init__.py): status and report 0 whenever the store was read, whatever
its captures' statuses (those are in the output); run 3 when a capture failed or has files
missing, since that is what the run found."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..settings import DEFAULT_CHUNK_SIZE, parse_sigma, parse_size
from . import EXIT_DATA_PROBLEMS, EXIT_OK, cli
from .output import console, echo_json, fmt_ms, print_table, progress_bar, results_table


def _storage(value: str | None) -> dict | None:
    if value is None:
        return None
    try:
        opts = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--storage-options") from exc
    if not isinstance(opts, dict):
        raise click.BadParameter("a JSON object", param_hint="--storage-options")
    return opts


def _storage_option(f):  # noqa: ANN001, ANN202 - a click decorator
    return click.option("--storage-options", default=None, metavar="JSON",
                        envvar="STREAMLENS_STORAGE_OPTIONS",
                        help="fsspec options for URL captures (JSON object).")(f)


@cli.group("campaign")
def campaign() -> None:
    """Many captures (tails x flights) analysed incrementally into one campaign store."""


@campaign.command("init")
@click.argument("store")
@click.option("--sigma", default="3", show_default=True, help="Outlier threshold k.")
@click.option("--chunk-size", default=str(DEFAULT_CHUNK_SIZE // 1024**2) + "MiB",
              show_default=True, help="Target chunk size of every capture's analysis.")
def init_cmd(store: str, sigma: str, chunk_size: str) -> int:
    """Create an empty campaign STORE (a directory; any existing path is refused).

    Exit status 0, or 1 when STORE exists or cannot be created."""
    from ..campaign.cstore import Campaign

    try:
        sigma, size = parse_sigma(sigma), parse_size(chunk_size)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    Campaign.create(store, sigma, size)
    click.echo(f"created campaign {store} (sigma {sigma}, chunk size {size} bytes)")
    return EXIT_OK


@campaign.command("discover")
@click.argument("root")
@click.option("--pattern", required=True,
              help="Path pattern below ROOT, e.g. '{tail}/{date}/{flight}/*.pcapng'.")
@click.option("-o", "--output", default=None,
              help="Write the manifest here (.csv or .yaml) instead of printing it.")
@click.option("--overwrite", is_flag=True, help="Replace the file --output names.")
@_storage_option
def discover_cmd(root: str, pattern: str, output: str | None, overwrite: bool,
                 storage_options: str | None) -> int:
    """Build a manifest from the files under ROOT (a directory or a URL prefix); local files
    are written with absolute paths.

    Exit status 0, or 1 when ROOT cannot be listed or --output exists (without --overwrite)
    or is not a file."""
    from ..campaign.manifest import discover, manifest_text, write_manifest

    entries = discover(root, pattern, _storage(storage_options))
    if output:
        write_manifest(output, entries, overwrite)
        click.echo(f"{len(entries)} captures -> {output}", err=True)
    else:
        click.echo(manifest_text(entries, yaml=False), nl=False)
    return EXIT_OK


@campaign.command("add")
@click.argument("store")
@click.argument("manifest")
@click.option("--replace", is_flag=True, help="Redefine captures whose id is already there.")
def add_cmd(store: str, manifest: str, replace: bool) -> int:
    """Add the captures of MANIFEST (.csv or .yaml) to the campaign STORE; its relative paths
    are relative to MANIFEST's directory. The new captures show as pending.

    Exit status 0, or 1 when MANIFEST is invalid or redefines a capture without --replace."""
    from ..campaign.cstore import Campaign
    from ..campaign.manifest import read_manifest

    added, replaced = Campaign(store).add(read_manifest(manifest), replace)
    click.echo(f"{added} captures added, {replaced} replaced")
    return EXIT_OK


@campaign.command("run")
@click.argument("store")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS", envvar="DASK_SCHEDULER_ADDRESS",
              help="Submit to this Dask scheduler instead of a local cluster.")
@click.option("--serial", is_flag=True, help="Run in this process without Dask.")
@click.option("--concurrent", "concurrency", type=click.IntRange(min=1), default=None,
              help="Captures in flight at once [default: twice the workers].")
@click.option("--retry-failed", is_flag=True, help="Analyse failed captures again.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@_storage_option
def run_cmd(store: str, workers: int | None, scheduler: str | None, serial: bool,
            concurrency: int | None, retry_failed: bool, quiet: bool,
            storage_options: str | None) -> int:
    """Analyse the captures of STORE that are new or changed, then rebuild its tables.
    Captures whose files are missing are not analysed and keep their results.

    Exit status 0; 3 when a capture failed or has files missing (listed); 1 when STORE is
    not a campaign or the cluster is lost (what was committed stays)."""
    from ..campaign.run import Plan, run_campaign

    err = console(stderr=True)
    with progress_bar(err, quiet, TextColumn("captures"), BarColumn(), DownloadColumn(),
                      TimeRemainingColumn(), TextColumn("{task.description}")) as bar:

        def on_plan(plan: Plan) -> None:
            missing = f", {len(plan.missing)} with files missing" if plan.missing else ""
            err.print(f"{len(plan.todo)} captures to analyse, {len(plan.unchanged)} unchanged"
                      f"{missing}", highlight=False)
            if plan.todo:  # no bar for a run with nothing to do
                bar.add_task("", total=plan.bytes or 1)

        def progress(done: int, total: int, nbytes: int, total_bytes: int, cid: str) -> None:
            bar.update(bar.task_ids[0], completed=nbytes, description=f"{done}/{total} {cid}")

        report = run_campaign(store, scheduler=scheduler, workers=workers, serial=serial,
                              concurrency=concurrency, retry_failed=retry_failed,
                              storage_options=_storage(storage_options), progress=progress,
                              on_plan=on_plan)
    click.echo(f"{store}: {len(report.analysed)} analysed, {len(report.failed)} failed, "
               f"{len(report.missing)} files missing, {len(report.unchanged)} unchanged; "
               f"{report.frames:,} frames, {report.bytes / 1e6:,.1f} MB in "
               f"{report.wall_s:.1f} s")
    for cid, msg in sorted(report.failed.items()):
        click.echo(f"failed: {cid}: {msg}")
    for cid, msg in sorted(report.missing.items()):
        click.echo(f"not analysed: {cid}: {msg}")
    return EXIT_DATA_PROBLEMS if report.failed or report.missing else EXIT_OK


def _open(store: str):  # noqa: ANN202
    import zarr

    from ..campaign.cstore import Campaign

    Campaign(store)  # a clear error if it is not one
    return zarr.open_group(store, mode="r", zarr_format=3)


@campaign.command("status")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the captures index as JSON.")
def status_cmd(store: str, as_json: bool) -> int:
    """One line per capture: status (pending, ok, problems, failed, files-missing), frames,
    problems, error.

    Exit status 0 whenever STORE was read (whatever the captures' statuses), 1 when it is
    not a campaign store."""
    g = _open(store)["capture_index"]
    cols = ("capture_id", "tail", "flight", "date", "status", "frames", "flows", "outliers",
            "problems", "error")
    rows = [dict(zip(cols, r, strict=True)) for r in zip(*[g[c][:].tolist() for c in cols],
                                                          strict=True)]
    if as_json:
        echo_json(rows)
        return EXIT_OK
    table = Table(title=f"{store}: {len(rows)} captures", title_justify="left")
    for c in cols:
        table.add_column(c, justify="right" if c in _COUNTS else "left", no_wrap=c != "error")
    for r in rows:
        table.add_row(*[Text(f"{r[c]:,}" if c in _COUNTS else str(r[c])) for c in cols])
    print_table(console(), table)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    click.echo(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no captures")
    return EXIT_OK


@campaign.command("report")
@click.argument("store")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--min-iats", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Rank only flows with at least this many IATs (a handful of IATs gives "
                   "a rate that means nothing).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def report_cmd(store: str, top: int, min_iats: int, as_json: bool) -> int:
    """The flows with the highest outlier rate across the fleet, and per tail (the same as
    `streamlens-dist report STORE`).

    Exit status 0 whenever STORE was read (failed captures are in the output), 1 when it is
    not a campaign store."""
    from ..reader import open_results

    _open(store)  # a clear error if it is not a campaign store
    summary = open_results(store).summary(top, min_iats=min_iats)
    if as_json:
        echo_json(summary)
    else:
        print_campaign(summary, console())
    return EXIT_OK


_COUNTS = ("captures", "frames", "iat_count", "outliers", "flows", "problems")
_SHOWN = {"captures": "captures", "frames": "frames", "iat_count": "IATs",
          "outliers": "outliers", "outlier_rate": "outlier rate", "iat_mean_ns": "mean IAT ms",
          "iat_std_ns": "std IAT ms"}


def _cell(column: str, value: Any) -> str:
    if value is None:  # NaN in summary() data: no IATs
        return "-"
    if column == "outlier_rate":
        return f"{value:.4%}"
    if column in ("iat_mean_ns", "iat_std_ns"):
        return fmt_ms(value)
    return f"{value:,}" if column in _COUNTS else str(value)


def print_campaign(summary: dict, out: Console) -> None:
    """CampaignResults.summary() as tables."""
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["captures"].items()))
    out.print(f"[bold]{summary['store']}[/bold]: {counts or 'no captures'}")
    least = summary["min_iats"]
    for name, keys, where in (("fleet_flows", ("src", "dst", "kind"), "Fleet"),
                              ("tail_flows", ("tail", "src", "dst", "kind"), "Per tail")):
        rows, below = summary[name], summary["below_min_iats"][name]
        if rows:
            print_table(out, results_table(
                f"{where}: flows with >= {least:,} IATs, by outlier rate",
                [*keys, *_SHOWN.values()],
                [[_cell(c, r[c]) for c in (*keys, *_SHOWN)] for r in rows], len(keys)))
        if below:
            out.print(f"{where}: {below:,} flows with fewer than {least:,} IATs not ranked "
                          "(--min-iats)", highlight=False)
