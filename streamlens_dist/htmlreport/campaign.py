"""The HTML report of a campaign store: outlier rate per flow and capture (heatmap), the
capture index and the worst fleet flows. Per-capture detail is one `report --html` away."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .page import Page, capped, esc, facts, fmt_int, fmt_ms, fmt_ts, table
from .plots import heatmap_figure
from .tables import flow_label

MAX_HEATMAP_FLOWS = 40
MAX_HEATMAP_CAPTURES = 300


def _by_rate(fleet: pd.DataFrame) -> list[int]:
    """Fleet flow rows by outlier rate, highest first (flows without IATs last)."""
    rate = fleet["outlier_rate"].fillna(-1.0).to_numpy()
    return sorted(range(len(fleet)), key=lambda i: (-rate[i], i))


def _labels(fleet: pd.DataFrame) -> list[str]:
    labels = [flow_label(s, d) for s, d in zip(fleet["src"], fleet["dst"], strict=True)]
    seen: dict[str, int] = {}
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
    # the same addresses as ip and l2 flows: the kind tells them apart
    return [f"{lab} ({k})" if seen[lab] > 1 else lab
            for lab, k in zip(labels, fleet["kind"], strict=True)]


def heatmap_cells(res: Any, flows_cap: int = MAX_HEATMAP_FLOWS,
                  captures_cap: int = MAX_HEATMAP_CAPTURES) -> tuple[pd.DataFrame, list[str],
                                                                      list[str], str]:
    """Cells (flow label, capture id, rate...) of the worst `flows_cap` fleet flows by rate
    and the first `captures_cap` captures of the index, and a note when either is capped."""
    fleet, index = res.table("fleet_flows"), res.table("capture_index")
    per = res.table("fleet_flow_captures")
    rows = _by_rate(fleet)[:flows_cap]
    labels = _labels(fleet)
    caps = [str(c) for c in index["capture_id"]][:captures_cap]
    keep = per[per["flow"].isin(rows) & (per["capture"] < len(caps))]
    n = keep["iat_count"].to_numpy()
    rate = np.where(n > 0, keep["outliers"].to_numpy() / np.maximum(n, 1), np.nan)
    cells = pd.DataFrame({"flow": [labels[f] for f in keep["flow"]],
                          "capture": [caps[c] for c in keep["capture"]], "rate": rate,
                          "outliers": keep["outliers"].to_numpy(), "iat_count": n,
                          "pct": [f"{r:.4%}" if r == r else "no IATs" for r in rate]})
    note = capped(len(rows), len(fleet), "flows (highest outlier rate)") \
        + capped(len(caps), len(index), "captures (index order)")
    return cells, [labels[i] for i in rows], caps, note


def build_campaign_page(res: Any, flows_n: int, rows_cap: int) -> Page:
    a = res.attrs
    index, fleet = res.table("capture_index"), res.table("fleet_flows")
    title = f"streamlens-dist campaign report: {res.path}"
    page = Page(title)
    status = index["status"].value_counts().to_dict()
    page.html(f"<h1>{esc(title)}</h1>" + facts([
        ("captures", fmt_int(len(index))),
        *((f"captures {k}", fmt_int(v)) for k, v in sorted(status.items())),
        ("frames", fmt_int(index["frames"].sum())), ("fleet flows", fmt_int(len(fleet))),
        ("outliers", fmt_int(index["outliers"].sum())), ("sigma", a.get("sigma", "?"))]))
    page.html("<h2>Outlier rate per flow and capture</h2>")
    cells, flows, caps, note = heatmap_cells(res)
    page.html(note)
    if len(cells):
        page.plot(heatmap_figure(cells, flows, caps))
    else:
        page.html("<p>No capture has been analysed yet.</p>")
    worst = _by_rate(fleet)[:max(flows_n, 1) * 2]
    page.html("<h2>Worst fleet flows by outlier rate</h2>" + capped(
        len(worst), len(fleet), "flows") + table(
        ("flow", "kind", "captures", "frames", "IATs", "outliers", "outlier rate",
         "mean IAT ms", "std ms"),
        [(flow_label(fleet["src"].iat[i], fleet["dst"].iat[i]), fleet["kind"].iat[i],
          fmt_int(fleet["captures"].iat[i]), fmt_int(fleet["frames"].iat[i]),
          fmt_int(fleet["iat_count"].iat[i]), fmt_int(fleet["outliers"].iat[i]),
          _pct(fleet["outlier_rate"].iat[i]), fmt_ms(fleet["iat_mean_ns"].iat[i]),
          fmt_ms(fleet["iat_std_ns"].iat[i])) for i in worst],
        (False, False, True, True, True, True, True, True, True)))
    shown = index.head(rows_cap)
    page.html("<h2>Captures</h2>" + capped(len(shown), len(index), "captures") + table(
        ("capture", "tail", "flight", "date", "status", "frames", "flows", "outliers",
         "problems", "first frame (UTC)", "error"),
        [(r.capture_id, r.tail, r.flight, r.date, r.status, fmt_int(r.frames), fmt_int(r.flows),
          fmt_int(r.outliers), fmt_int(r.problems), fmt_ts(r.first_ns) if r.frames else "-",
          r.error) for r in shown.itertuples()],
        (False, False, False, False, False, True, True, True, True, False, False)))
    return page


def _pct(rate: float) -> str:
    return "-" if rate != rate else f"{rate:.4%}"
