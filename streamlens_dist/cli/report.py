"""`streamlens-dist report STORE`: the summary of a result store, single capture or campaign."""

from __future__ import annotations

import json

import click
from rich.console import Console

from . import EXIT_DATA_PROBLEMS, EXIT_OK, cli


@cli.command("report")
@click.argument("store")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1),
              help="Rows of the campaign tables.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON: what open_results(STORE).summary() returns.")
@click.option("--storage-options", default=None, metavar="JSON",
              envvar="STREAMLENS_STORAGE_OPTIONS", help="fsspec options for a URL store.")
@click.option("--html", "html_path", default=None, metavar="FILE",
              help="Write a self-contained HTML report (opens offline) to FILE instead of "
                   "printing the summary.")
@click.option("--html-flows", default=10, show_default=True, type=click.IntRange(min=1),
              help="IAT timelines of this many worst flows (by outliers) in the HTML report.")
def report_cmd(store: str, top: int, as_json: bool, storage_options: str | None,
               html_path: str | None, html_flows: int) -> int:
    """Counts, the worst flows and streams and the problems of the results in STORE (for a
    campaign: captures by status and flows by outlier rate, fleet-wide and per tail).

    With --html FILE: the same as a page with plots (IAT timelines of the worst flows, IAT
    histograms per frame type, the late frames of the worst stream, capped tables; for a
    campaign a flows x captures heatmap of outlier rate)."""
    from .campaign import _storage

    if html_path is not None:
        if as_json:
            raise click.UsageError("--html and --json are exclusive: --html writes a file, "
                                   "--json prints the summary")
        return report_html(store, html_path, html_flows, _storage(storage_options))
    return report_store(store, top, as_json, _storage(storage_options))


def report_html(store: str, out: str, flows: int, storage: dict | None = None) -> int:
    from ..htmlreport import write_html_report
    from ..htmlreport.page import fmt_bytes

    rep = write_html_report(store, out, flows=flows, storage=storage)
    click.echo(f"wrote {rep.path} ({fmt_bytes(rep.size)}, {rep.size:,} bytes, {rep.plots} plots)")
    return EXIT_DATA_PROBLEMS if rep.data_problems else EXIT_OK


def report_store(store: str, top: int, as_json: bool, storage: dict | None = None) -> int:
    from ..reader import CampaignResults, open_results
    from .analyze import print_results
    from .campaign import _console, print_campaign

    res = open_results(store, storage)
    summary = res.summary(top) if isinstance(res, CampaignResults) else res.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    elif isinstance(res, CampaignResults):
        print_campaign(summary, _console())
    else:
        print_results(store, res.attrs, res.tables(), Console(soft_wrap=True))
    if isinstance(res, CampaignResults):
        return EXIT_DATA_PROBLEMS if summary["captures"].get("failed") else EXIT_OK
    return EXIT_DATA_PROBLEMS if res.attrs["problems"] or res.attrs["malformed_payloads"] \
        else EXIT_OK
