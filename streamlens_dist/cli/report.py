"""`streamlens-dist report STORE`: the summary of a result store, single capture or campaign."""

from __future__ import annotations

import click

from . import EXIT_OK, cli
from .analyze import DEFAULT_TOP


@cli.command("report")
@click.argument("store")
@click.option("--top", default=DEFAULT_TOP, show_default=True, type=click.IntRange(min=1),
              help="Rows of each table (flows, frame types, streams; campaign flows).")
@click.option("--min-iats", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Campaign stores: rank only flows with at least this many IATs by outlier "
                   "rate (a handful of IATs gives a rate that means nothing).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON: what open_results(STORE).summary() returns.")
@click.option("--storage-options", default=None, metavar="JSON",
              envvar="STREAMLENS_STORAGE_OPTIONS", help="fsspec options for a URL store.")
@click.option("--html", "html_path", default=None, metavar="FILE",
              help="Write a self-contained HTML report (opens offline) to FILE instead of "
                   "printing the summary. An existing FILE is replaced only if it is an "
                   "HTML report of ours.")
@click.option("--html-flows", default=10, show_default=True, type=click.IntRange(min=1),
              help="IAT timelines of this many worst flows (by outliers) in the HTML report.")
def report_cmd(store: str, top: int, min_iats: int, as_json: bool,
               storage_options: str | None, html_path: str | None, html_flows: int) -> int:
    """Counts, the flows, frame types and streams (worst first) and the problems of the
    results in STORE (for a campaign: captures by status and flows by outlier rate,
    fleet-wide and per tail).

    With --html FILE: the same as a page with plots (IAT timelines of the worst flows, IAT
    histograms per frame type, the late frames of the worst stream, capped tables; for a
    campaign a flows x captures heatmap of outlier rate).

    Exit status: 0 the store was read (whatever problems the capture had: they are listed);
    1 STORE is not a result store or cannot be read, or FILE cannot be written; 2 bad usage."""
    from .campaign import _storage

    if html_path is not None:
        if as_json:
            raise click.UsageError("--html and --json are exclusive: --html writes a file, "
                                   "--json prints the summary")
        return report_html(store, html_path, html_flows, _storage(storage_options))
    return report_store(store, top, as_json, _storage(storage_options), min_iats)


def report_html(store: str, out: str, flows: int, storage: dict | None = None) -> int:
    from ..htmlreport import write_html_report
    from ..htmlreport.page import fmt_bytes

    rep = write_html_report(store, out, flows=flows, storage=storage)
    click.echo(f"wrote {rep.path} ({fmt_bytes(rep.size)}, {rep.size:,} bytes, {rep.plots} plots)")
    return EXIT_OK


def report_store(store: str, top: int, as_json: bool, storage: dict | None = None,
                 min_iats: int = 1000) -> int:
    from ..reader import CampaignResults, open_results
    from .analyze import print_results
    from .campaign import print_campaign
    from .output import console, echo_json

    res = open_results(store, storage)
    summary = res.summary(top, min_iats) if isinstance(res, CampaignResults) else res.summary()
    if as_json:
        echo_json(summary)
    elif isinstance(res, CampaignResults):
        print_campaign(summary, console())
    else:
        print_results(store, res.attrs, res.tables, console(), top)
    return EXIT_OK
