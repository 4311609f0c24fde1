"""The HTML report of one capture's results: overview, the late frames of the worst stream,
the worst flows' IAT timelines, IAT histograms per frame type, and capped tables."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

from ..results import STREAM_SUMMARY
from . import tables as tb
from .page import Page, capped, esc, facts, fmt_duration, fmt_int, fmt_ms, fmt_ts, table
from .plots import histogram_figure, histogram_range, timeline_figure

SECTIONS = (("late", "Late frames"), ("streams", "Worst streams"), ("flows", "Worst flows"),
            ("timelines", "Timelines"), ("histograms", "Histograms"), ("outliers", "Outliers"),
            ("gaps", "Sequence gaps"))
MAX_PROBLEMS = 50


def _overview(res: Any, title: str) -> str:
    a, t = res.attrs, res.table
    flows, streams, gaps = t("flows"), t("streams"), t("sequence_gaps")
    span = int(a["last_ns"]) - int(a["first_ns"]) if a.get("first_ns") is not None else None
    items = [("frames", fmt_int(a["frames"])), ("files", fmt_int(len(a.get("files", [])))),
             ("first frame (UTC)", fmt_ts(a["first_ns"]) if span is not None else "-"),
             ("last frame (UTC)", fmt_ts(a["last_ns"]) if span is not None else "-"),
             ("time span", fmt_duration(span) if span is not None else "-"),
             ("flows", fmt_int(len(flows))),
             ("frame types (flow, type)", fmt_int(len(t("frame_types")))),
             (f"flow outliers (sigma {a['sigma']})", fmt_int(len(t("flow_outliers")))),
             ("protocol streams", fmt_int(len(streams))),
             ("stream outliers", fmt_int(len(t("stream_outliers")))),
             ("sequence gaps", fmt_int(len(gaps))),
             ("messages missing", fmt_int(gaps["missing"].sum() if len(gaps) else 0)),
             ("undecodable frames", fmt_int(a.get("undecodable_frames", 0))),
             ("untimed frames", fmt_int(a.get("untimed_frames", 0)))]
    if a.get("series_bin_ns"):
        items.append(("series bin", f"{int(a['series_bin_ns']) / 1e9:g} s"))
    out = [f"<h1>{esc(title)}</h1>",
           f'<p class="sub">{esc(res.path)} &middot; streamlens-dist '
           f'{esc(a.get("software_version", "?"))}'
           f'{"" if a.get("complete") else " &middot; <b>store not marked complete</b>"}</p>',
           "<nav>" + "".join(f'<a href="#{k}">{v}</a>' for k, v in SECTIONS) + "</nav>",
           facts(items)]
    problems = a.get("problems") or []
    malformed = a.get("malformed_payloads") or {}
    if problems or malformed:
        lines = [f"<li>{esc(_problem(p))}</li>" for p in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            lines.append(f"<li>... and {fmt_int(len(problems) - MAX_PROBLEMS)} more (the store's "
                         "<code>problems</code> attribute has them all)</li>")
        lines += [f"<li>malformed payloads: {esc(k)}: {fmt_int(v)} frames</li>"
                  for k, v in malformed.items()]
        out.append(f"<h2>Problems</h2><ul>{''.join(lines)}</ul>")
    return "".join(out)


def _problem(p: Any) -> str:
    if not isinstance(p, dict):
        return str(p)
    where = f"{os.path.basename(str(p.get('file', '')))}, frame {p.get('frame')}, offset " \
            f"{p.get('offset')}"
    return f"{p.get('kind')} ({where}): {p.get('message')}"


def _late_frames(res: Any, cap: int) -> str:
    streams, flows = res.table("streams"), res.table("flows")
    row = tb.worst_stream_row(streams)
    head = '<div class="late" id="late"><h2>Late frames of the worst stream</h2>'
    if row is None:
        return head + "<p>No protocol stream has late frames (IAT outliers).</p></div>"
    late = res.late_frames(row)
    flow, name = tb.stream_label(streams, flows, row)
    shown = late.nlargest(cap, "deviation").sort_values("frame") if len(late) > cap else late
    numbers = " ".join(str(int(f)) for f in shown["frame"])
    rows = [(int(r.frame), fmt_ts(r.ts_ns), fmt_ms(r.iat_ns), f"{r.deviation:.1f}")
            for r in shown.itertuples()]
    mean = float(streams["iat_mean_ns"].iat[row])
    return "".join([
        head, f'<p><b class="mono">{esc(name)}</b> in flow <b class="mono">{esc(flow)}</b>: '
        f"{fmt_int(len(late))} late frames of {fmt_int(streams['messages'].iat[row])} messages "
        f"(mean IAT {fmt_ms(mean)} ms, {fmt_int(streams['lost'].iat[row])} lost).</p>",
        f'<p>Wireshark display filter:</p><p class="frames"><code>frame.number in '
        f"{{{esc(numbers)}}}</code></p>",
        capped(len(shown), len(late), "late frames (largest deviations)"),
        table(("frame", "time (UTC)", "IAT ms", "deviation (std)"), rows,
              (True, False, True, True)), "</div>"])


def _worst_streams(streams: Any, flows: Any, n: int) -> str:
    out = ['<h2 id="streams">Worst protocol streams</h2>']
    if not len(streams):
        return out[0] + "<p>No protocol streams in this capture.</p>"
    for by, what in (("outliers", "late frames (IAT outliers)"), ("lost", "messages lost")):
        order = sorted(range(len(streams)), key=lambda i: (-int(streams[by].iat[i]), i))[:n]
        rows = [(*tb.stream_label(streams, flows, i),
                 *(fmt_ms(streams[c].iat[i]) if c.endswith("_ns") else fmt_int(streams[c].iat[i])
                   for c in STREAM_SUMMARY), fmt_ms(streams["iat_max_ns"].iat[i]))
                for i in order if int(streams[by].iat[i]) > 0]
        out.append(f"<p>By {what}:</p>" + (table(
            ("flow", "stream", *STREAM_SUMMARY.values(), "max IAT ms"), rows,
            (False, False, *[True] * (len(STREAM_SUMMARY) + 1)), scroll=False)
            if rows else "<p>none</p>"))
    return "".join(out)


def _worst_flows(flows: Any, rows: list[int]) -> str:
    data = [(f'{flows["src"].iat[i]} > {flows["dst"].iat[i]}', flows["kind"].iat[i],
             flows["protocols"].iat[i], fmt_int(flows["frames"].iat[i]),
             fmt_int(flows["outliers"].iat[i]), fmt_ms(flows["iat_mean_ns"].iat[i]),
             fmt_ms(flows["iat_std_ns"].iat[i]), fmt_ms(flows["iat_max_ns"].iat[i]))
            for i in rows]
    return ('<h2 id="flows">Worst flows by outliers</h2>' + table(
        ("flow", "kind", "protocols", "frames", "outliers", "mean IAT ms", "std ms",
         "max IAT ms"), data, (False, False, False, True, True, True, True, True)))


def _histograms(page: Page, res: Any, worst: int) -> None:
    page.html('<h2 id="histograms">IAT histograms</h2>')
    hist = tb.optional_table(res, "frame_type_histograms")
    edges = res.attrs.get("histogram_edges_ns")
    if hist is None or not edges:
        page.html('<p class="note">This store has no IAT histograms (written before they were '
                  "added): analyse the capture again to get them.</p>")
        return
    ft, flows = res.table("frame_types"), res.table("flows")
    x = histogram_range(edges)
    page.html("<p>Per frame type, pooled over all flows (fixed log bins; the first bar is "
              "IAT &lt; 1 &micro;s, the last &ge; 1000 s):</p>")
    page.plots([histogram_figure(name, counts, edges, x)
                for name, counts in tb.pooled_histograms(hist, ft).items()])
    order = [i for i in tb.worst_flows(ft, worst) if ft["outliers"].iat[i] > 0]
    if order:
        page.html("<p>The (flow, frame type) scopes with the most outliers:</p>")
        page.plots([histogram_figure(_scope_title(flows, ft, i),
                                     tb.scope_histogram(hist, "frame_type_row", i), edges, x)
                    for i in order])


def _scope_title(flows: Any, ft: Any, row: int) -> str:
    f = int(ft["flow"].iat[row])
    return f'{tb.flow_label(flows["src"].iat[f], flows["dst"].iat[f])} {ft["frame_type"].iat[row]}'


def build_capture_page(res: Any, flows_n: int, points_cap: int, rows_cap: int) -> Page:
    files = [os.path.basename(str(f)) for f in res.attrs.get("files", [])]
    title = "streamlens-dist report: " + (", ".join(files[:3]) + (" ..." if len(files) > 3
                                                                   else "") or res.path)
    page = Page(title)
    page.html(_overview(res, title))
    page.html(_late_frames(res, rows_cap))
    flows, outliers = res.table("flows"), res.table("flow_outliers")
    page.html(_worst_streams(res.table("streams"), flows, flows_n))
    worst = tb.worst_flows(flows, flows_n)
    page.html(_worst_flows(flows, worst))
    page.html('<h2 id="timelines">IAT timelines of the worst flows</h2>')
    series = tb.optional_table(res, "flow_series")
    if series is None:
        page.html('<p class="note">This store has no time series (written before they were '
                  "added): the timelines show the outliers only.</p>")
    sigma = float(Fraction(str(res.attrs.get("sigma", "3"))))
    for i in worst:
        t = tb.timeline(flows, series, outliers, i, res.attrs.get("series_bin_ns"), sigma,
                        points_cap)
        page.plot(timeline_figure(t, int(flows["frames"].iat[i])))
    _histograms(page, res, min(flows_n, 6))
    top = tb.worst_outliers(outliers, flows, rows_cap)
    page.html('<h2 id="outliers">Outliers by deviation</h2>'
              + capped(len(top), len(outliers), "outliers (largest deviations)")
              + table(("flow", "frame", "time (UTC)", "IAT ms", "deviation (std)"),
                      [(r.flow_label, int(r.frame), fmt_ts(r.ts_ns), fmt_ms(r.iat_ns),
                        f"{r.deviation:.1f}") for r in top.itertuples()],
                      (False, True, False, True, True)))
    gaps = res.table("sequence_gaps")
    g = tb.worst_gaps(gaps, res.table("streams"), flows, rows_cap)
    page.html('<h2 id="gaps">Sequence gaps by messages missing</h2>'
              + capped(len(g), len(gaps), "gaps (most missing)")
              + table(("flow", "stream", "missing", "frame before", "frame after", "gap ms",
                       "seq before", "seq after"),
                      [(r.flow_label, r.stream_label, fmt_int(r.missing), int(r.frame_before),
                        int(r.frame_after), fmt_ms(r.span_ns), int(r.seq_before),
                        int(r.seq_after)) for r in g.itertuples()],
                      (False, False, True, True, True, True, True, True)))
    return page
