"""The HTML page: static sections (facts, tables) around the bokeh figures, all inline.

The page is assembled by bokeh's own `file_html` with INLINE resources, so BokehJS, its CSS
and every figure's data are in the one file and it opens offline; file_html also includes
only the BokehJS bundles the figures need. Static HTML is passed to the template as
variables, never spliced into the template source: capture text (TMATS, names) may contain
`{{`, which Jinja would otherwise read as template code.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bokeh.core.templates import get_env
from bokeh.document import Document
from bokeh.embed import file_html
from bokeh.model import Model
from bokeh.resources import INLINE

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2330; margin: 0 auto; max-width: 1280px;
       padding: 0 24px 48px; height: auto; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px;
     border-bottom: 1px solid #d5d9e0; padding-bottom: 4px; }
.sub { color: #5b6473; margin: 0 0 12px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 8px; }
.fact { background: #f4f6f9; border-radius: 6px; padding: 6px 10px; }
.fact b { display: block; font-size: 17px; }
.fact span { color: #5b6473; font-size: 12px; }
.late { border: 2px solid #c0392b; border-radius: 8px; padding: 10px 16px; background: #fdf3f2; }
.late h2 { border: 0; margin-top: 4px; color: #a52a1c; }
.frames { font: 13px/1.5 ui-monospace, monospace; word-break: break-word; }
code, .mono { font-family: ui-monospace, monospace; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e3e6eb; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eef1f5; position: sticky; top: 0; }
.scroll { max-height: 520px; overflow: auto; display: inline-block; }
.note { color: #7a5a00; background: #fff8e1; padding: 4px 10px; border-radius: 4px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
nav a { margin-right: 14px; }
"""

# The generator tag (in the first bytes of the file) is how `report --html` knows a file is
# one of its own reports, the only kind of file it replaces (htmlreport.is_html_report).
GENERATOR = '<meta name="generator" content="streamlens-dist">'
TEMPLATE = """{% extends base %}
{% block preamble %}""" + GENERATOR + """<style>{{ css }}</style>{% endblock %}
{% block contents %}
{% for kind, value in blocks %}
{% if kind == "html" %}{{ value }}{% else %}{{ embed(roots[value]) }}{% endif %}
{% endfor %}
{% endblock %}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_ts(ns: int) -> str:
    """Integer ns since the epoch as UTC text with all nine decimals (no float rounding)."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{frac:09d}"


def fmt_ms(ns: float) -> str:
    return "" if ns != ns else f"{ns / 1e6:,.3f}"


def fmt_int(n: Any) -> str:
    return f"{int(n):,}"


def fmt_bytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def fmt_duration(ns: int) -> str:
    s = ns / 1e9
    return f"{s:,.3f} s" if s < 120 else f"{s / 60:,.1f} min ({s:,.0f} s)"


def facts(items: Iterable[tuple[str, Any]]) -> str:
    cells = "".join(f'<div class="fact"><b>{esc(v)}</b><span>{esc(k)}</span></div>'
                    for k, v in items)
    return f'<div class="facts">{cells}</div>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool],
          scroll: bool = True) -> str:
    """A plain HTML table; every cell escaped. `numeric` right-aligns a column."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{esc(c)}</td>' if n else f"<td>{esc(c)}</td>"
                                    for c, n in zip(r, numeric, strict=True)) + "</tr>"
                   for r in rows)
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{out}</div>' if scroll else out


def capped(shown: int, total: int, what: str) -> str:
    if shown < total:
        return f'<p class="note">{fmt_int(shown)} of {fmt_int(total)} {esc(what)} shown.</p>'
    return ""


class Page:
    """Blocks in order: ("html", text) or ("plot", root name) for a bokeh model."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[tuple[str, str]] = []
        self.models: list[Model] = []

    def html(self, text: str) -> None:
        if text:
            self.blocks.append(("html", text))

    def plot(self, model: Model) -> None:
        model.name = f"plot{len(self.models)}"
        self.models.append(model)
        self.blocks.append(("plot", model.name))

    def plots(self, models: Sequence[Model]) -> None:
        """Side by side, wrapping: each its own root, laid out by the page's CSS."""
        self.html('<div class="grid">')
        for m in models:
            self.plot(m)
        self.html("</div>")

    def render(self) -> str:
        template = get_env().from_string(TEMPLATE)
        variables = {"blocks": self.blocks, "css": CSS}
        if not self.models:  # file_html needs a root; a report without plots is still a page
            from bokeh.models import Div

            self.plot(Div(text=""))
        doc = Document()
        # one model graph walk for all roots: add_root outside freeze() walks the whole
        # document again per root (8 s of 11 for a 38-figure report)
        with doc.models.freeze():
            for m in self.models:
                doc.add_root(m)
        return file_html(doc, INLINE, self.title, template=template,
                         template_variables=variables)
