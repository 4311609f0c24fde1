"""`streamlens-dist campaign init|discover|add|run|status|report`: many captures, one store."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..settings import DEFAULT_CHUNK_SIZE, parse_sigma, parse_size
from . import EXIT_DATA_PROBLEMS, EXIT_OK, cli


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
    """Create an empty campaign STORE (a directory)."""
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
@_storage_option
def discover_cmd(root: str, pattern: str, output: str | None, storage_options: str | None
                 ) -> int:
    """Build a manifest from the files under ROOT (a directory or a URL prefix)."""
    from ..campaign.manifest import discover, manifest_text, write_manifest

    entries = discover(root, pattern, _storage(storage_options))
    if output:
        write_manifest(output, entries)
        click.echo(f"{len(entries)} captures -> {output}", err=True)
    else:
        click.echo(manifest_text(entries, yaml=False), nl=False)
    return EXIT_OK


@campaign.command("add")
@click.argument("store")
@click.argument("manifest")
@click.option("--replace", is_flag=True, help="Redefine captures whose id is already there.")
def add_cmd(store: str, manifest: str, replace: bool) -> int:
    """Add the captures of MANIFEST (.csv or .yaml) to the campaign STORE."""
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
    """Analyse the captures of STORE that are new or changed, then rebuild its tables."""
    from ..campaign.run import run_campaign

    console = Console(stderr=True)
    with Progress(TextColumn("captures"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), TextColumn("{task.description}"), console=console,
                  disable=quiet) as bar:
        task = bar.add_task("", total=None)

        def on_plan(plan) -> None:  # noqa: ANN001
            bar.update(task, total=plan.bytes or 1)
            console.print(f"{len(plan.todo)} captures to analyse, {len(plan.unchanged)} "
                          "unchanged", highlight=False)

        def progress(done: int, total: int, nbytes: int, total_bytes: int, cid: str) -> None:
            bar.update(task, completed=nbytes, description=f"{done}/{total} {cid}")

        report = run_campaign(store, scheduler=scheduler, workers=workers, serial=serial,
                              concurrency=concurrency, retry_failed=retry_failed,
                              storage_options=_storage(storage_options), progress=progress,
                              on_plan=on_plan)
    click.echo(f"{store}: {len(report.analysed)} analysed, {len(report.failed)} failed, "
               f"{len(report.unchanged)} unchanged; {report.frames:,} frames, "
               f"{report.bytes / 1e6:,.1f} MB in {report.wall_s:.1f} s")
    for cid, err in sorted(report.failed.items()):
        click.echo(f"failed: {cid}: {err}")
    return EXIT_DATA_PROBLEMS if report.failed else EXIT_OK


def _console() -> Console:
    """Tables at full width in logs and pipes too (not cut to 80 columns)."""
    c = Console()
    return c if c.is_terminal else Console(width=200)


def _open(store: str):  # noqa: ANN202
    import zarr

    from ..campaign.cstore import Campaign

    Campaign(store)  # a clear error if it is not one
    return zarr.open_group(store, mode="r", zarr_format=3)


@campaign.command("status")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the captures index as JSON.")
def status_cmd(store: str, as_json: bool) -> int:
    """One line per capture: status, frames, problems."""
    g = _open(store)["capture_index"]
    cols = ("capture_id", "tail", "flight", "date", "status", "frames", "flows", "outliers",
            "problems", "error")
    rows = [dict(zip(cols, r, strict=True)) for r in zip(*[g[c][:].tolist() for c in cols],
                                                          strict=True)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return EXIT_OK
    table = Table(title=f"{store}: {len(rows)} captures")
    for c in cols:
        table.add_column(c, justify="right" if c in ("frames", "flows", "outliers",
                                                      "problems") else "left")
    for r in rows:
        table.add_row(*[str(r[c]) for c in cols])
    _console().print(table)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    click.echo(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no captures")
    return EXIT_OK


@campaign.command("report")
@click.argument("store")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def report_cmd(store: str, top: int, as_json: bool) -> int:
    """The flows with the highest outlier rate across the fleet, and per tail (the same as
    `streamlens-dist report STORE`)."""
    from .report import report_store

    _open(store)  # a clear error if it is not a campaign store
    return report_store(store, top, as_json)


_SHOWN = ("captures", "frames", "outliers", "outlier_rate", "iat_mean_ns", "iat_std_ns")


def print_campaign(summary: dict, console: Console) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["captures"].items()))
    console.print(f"[bold]{summary['store']}[/bold]: {counts or 'no captures'}")
    for name, keys, title in (("fleet_flows", ("src", "dst", "kind"),
                               "Fleet: flows by outlier rate"),
                              ("tail_flows", ("tail", "src", "dst", "kind"),
                               "Per tail: flows by outlier rate")):
        rows = summary[name]
        if not rows:
            continue
        table = Table(title=title)
        for c in (*keys, *_SHOWN):
            table.add_column(c)
        for r in rows:
            table.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])
                            for c in (*keys, *_SHOWN)])
        console.print(table)
