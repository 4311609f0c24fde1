"""`streamlens-dist report STORE --html FILE`: a self-contained HTML report of a result store.

One file that opens offline (BokehJS, CSS and the data inline; the page fetches nothing).
Its size is bounded by caps, not by the capture: timelines are per time bin (re-binned above
tables.MAX_TIMELINE_BINS), outlier points and table rows are capped and the caps are stated
on the page. A single-capture store gets capture.build_capture_page, a campaign store
campaign.build_campaign_page.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

DEFAULT_FLOWS = 10  # timelines of this many worst flows
DEFAULT_POINTS = 2000  # outlier points drawn per timeline (largest deviations)
DEFAULT_ROWS = 200  # rows per table


@dataclass(frozen=True)
class HtmlReport:
    path: str
    size: int  # bytes written
    plots: int  # bokeh figures (document roots) in the page
    data_problems: bool  # the store records damaged input or malformed payloads (listed on the page)


def render_html(res: Any, flows: int = DEFAULT_FLOWS, points: int = DEFAULT_POINTS,
                rows: int = DEFAULT_ROWS) -> tuple[str, int]:
    """The page of an open_results() result (Results or CampaignResults) and its number of
    figures."""
    from ..reader import CampaignResults
    from .campaign import build_campaign_page
    from .capture import build_capture_page

    if isinstance(res, CampaignResults):
        page = build_campaign_page(res, flows, rows)
    else:
        page = build_capture_page(res, flows, points, rows)
    text = page.render()
    return text, len(page.models)


def write_html_report(store: str | os.PathLike, out: str | os.PathLike,
                      flows: int = DEFAULT_FLOWS, points: int = DEFAULT_POINTS,
                      rows: int = DEFAULT_ROWS, storage: dict | None = None) -> HtmlReport:
    """Write the HTML report of `store` (a single-capture or campaign result store) to `out`."""
    from ..outputs import check_apart, check_file_target, resolved
    from ..reader import open_results
    from ..store import atomic_write

    # checked first: reading a large store only to fail at the end would waste minutes
    out = check_file_target(out, ours=is_html_report, what="the HTML report")
    check_apart(out, resolved(store, storage), "the HTML report", "the store")
    res = open_results(store, storage)
    text, plots = render_html(res, flows, points, rows)
    data = text.encode("utf-8")
    atomic_write(out, data)
    return HtmlReport(out, len(data), plots, _data_problems(res))


def is_html_report(path: str) -> bool:
    """Whether the file at `path` is an HTML report we wrote (its head carries page.GENERATOR;
    reports written before the tag open with a title of ours)."""
    from .page import GENERATOR

    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return GENERATOR in head or "<title>streamlens-dist " in head


def _data_problems(res: Any) -> bool:
    """The exit status rule of the text report (cli/report.py)."""
    from ..reader import CampaignResults

    if isinstance(res, CampaignResults):
        return bool((res.table("capture_index")["status"] == "failed").any())
    return bool(res.attrs.get("problems") or res.attrs.get("malformed_payloads"))
