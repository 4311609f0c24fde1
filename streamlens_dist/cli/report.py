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
def report_cmd(store: str, top: int, as_json: bool, storage_options: str | None) -> int:
    """Counts, the worst flows and streams and the problems of the results in STORE (for a
    campaign: captures by status and flows by outlier rate, fleet-wide and per tail)."""
    from .campaign import _storage

    return report_store(store, top, as_json, _storage(storage_options))


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
