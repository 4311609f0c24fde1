"""Headless Debian Chromium driven by playwright (never playwright's own browser download):
open a local HTML file, record console messages, page errors and every request, screenshot.

`chromium_path()` is the system browser or None; tests skip with the reason when it is absent
(`apt-get install chromium` as root; .ci/run does it).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Visit:
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    text: str = ""
    probe: Any = None  # what the `probe` script returned

    def errors(self) -> list[str]:
        return self.page_errors + [t for kind, t in self.console if kind == "error"]


# BokehJS renders after load: wait until every root of the document has its view, then count
# the painted (not blank) pixels of each root's canvas.
PROBE = """async () => {
  const rootViews = () => {
    const roots = Bokeh.documents[0].roots();
    return Object.values(Bokeh.index).filter(v => roots.includes(v.model));
  };
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    if (window.Bokeh && Bokeh.documents.length && Bokeh.index
        && rootViews().length === Bokeh.documents[0].roots().length) break;
    await new Promise(r => setTimeout(r, 50));
  }
  await new Promise(r => setTimeout(r, 300));  // the first paint after the views exist
  const painted = [];
  for (const view of rootViews()) {
    let ink = 0;
    if (view.canvas_view) {
      const c = view.canvas_view.primary.canvas;
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 16) {  // every 4th pixel: not white, not clear
        if (d[i + 3] !== 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) ink++;
      }
    }
    painted.push({name: view.model.name, ink: ink});
  }
  return {roots: Bokeh.documents[0].roots().length, views: painted, version: Bokeh.version};
}"""


def visit(html: Path, screenshot: Path) -> Visit:
    """Load `html` from file:// in headless Chromium, wait for BokehJS, screenshot the page."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed")
    out = Visit()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1320, "height": 1000})
            page.on("console", lambda m: out.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: out.page_errors.append(str(e)))
            page.on("request", lambda r: out.requests.append(r.url))
            page.goto(html.resolve().as_uri(), wait_until="load")
            out.probe = page.evaluate(PROBE)
            out.text = page.inner_text("body")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return out
