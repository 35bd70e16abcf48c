"""The built docs site in Debian's Chromium (through Playwright): its pages draw their charts, offline.

The site is served by a local http.server on a free port, and every request that is not to it is blocked and
counted, so a page that needs a CDN fails here. Never run `playwright install`: the browser is /usr/bin/chromium.
"""
from __future__ import annotations

import base64
import functools
import json
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import NOTEBOOKS_GROUP, docs_tools

pytestmark = NOTEBOOKS_GROUP
CHROMIUM = "/usr/bin/chromium"
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
VIEW = "application/vnd.mlops-wb.view+json"  # a workbench widget's output: the parts of its last state


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(docs_site):
    "The built site, served on 127.0.0.1 by a local http.server."
    assert docs_site.code == 0, "the docs did not build: see test_docs.py::test_docs_build_has_no_warning"
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(docs_site.html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(site_url):
    "A Chromium page on the site that blocks (and records) every request elsewhere, and records console errors."
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update", "--no-first-run"])
        pg = browser.new_page(viewport={"width": 1300, "height": 1000})
        pg.errors, pg.blocked = [], []
        pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.errors.append(f"pageerror: {e}"))

        def route(r):
            if r.request.url.startswith(site_url + "/"):
                r.continue_()
            else:
                pg.blocked.append(r.request.url)
                r.abort()

        pg.route("**/*", route)
        yield pg
        browser.close()


def _expected(notebook: str) -> list[dict]:
    "What the executed notebook displayed, output by output: widget or not, its figures' traces, its table rows."
    rn, _ = docs_tools()
    nb = json.loads(rn.cached_path(rn.NBS / notebook).read_text())
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if VIEW in data:  # a workbench widget: the parts of its snapshot
                parts = data[VIEW].get("snapshot", {}).get("parts", [])
                figs = [p[PLOTLY] for p in parts if PLOTLY in p]
                html = "".join(p["text/html"] for p in parts if "text/html" in p)
                widget = True
            elif PLOTLY in data or WIDGET in data:
                figs = [data[PLOTLY]] if PLOTLY in data else []
                html = data.get("text/html", "") if WIDGET in data else ""
                html = "".join(html) if isinstance(html, list) else html  # nbformat may keep text as a list of lines
                widget = WIDGET in data
            else:
                continue
            out.append({"widget": widget, "html": html,
                        "traces": [[(t.get("type", "scatter"), _points(t)) for t in f.get("data", [])] for f in figs]})
    return out


_ITEMSIZE = {"i1": 1, "u1": 1, "u1c": 1, "i2": 2, "u2": 2, "i4": 4, "u4": 4, "f4": 4, "f8": 8}


def _count(v) -> int:
    "How many values an attribute holds: a list (of lists), or plotly's typed array {dtype, bdata, shape}."
    if isinstance(v, dict) and "bdata" in v:
        if v.get("shape"):
            n = 1
            for d in str(v["shape"]).split(","):
                n *= int(d)
            return n
        return len(base64.b64decode(v["bdata"])) // _ITEMSIZE[v["dtype"]]
    if isinstance(v, list):
        return sum(len(r) for r in v) if v and isinstance(v[0], list) else len(v)
    return 0


def _points(trace: dict) -> int:
    "How many points a trace holds: the size of its z (rows x columns), else of its x, y, values or dimensions."
    return next((n for n in (_count(trace.get(a)) for a in ("z", "x", "y", "values", "dimensions")) if n), 0)


def _table_rows(html: str) -> list[int]:
    "For each <table>, in document order, how many <tr> it holds (as the DOM's querySelectorAll counts them)."
    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.counts, self.open = [], []

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.open.append(len(self.counts))
                self.counts.append(0)
            elif tag == "tr":
                for i in self.open:
                    self.counts[i] += 1

        def handle_endtag(self, tag):
            if tag == "table" and self.open:
                self.open.pop()

    p = Rows()
    p.feed(html)
    return p.counts


# Each figure as plotly.js holds it on its element (gd.data): trace types and point counts, and what it drew.
DRAWN = """() => [...document.querySelectorAll('div.mlops-wb-plotly')].map(d => {
  const g = d.querySelector('.js-plotly-plot');
  if (!g) return null;
  const size = {i1: 1, u1: 1, u1c: 1, i2: 2, u2: 2, i4: 4, u4: 4, f4: 4, f8: 8};
  const count = v => {
    if (v == null) return 0;
    if (v.bdata !== undefined) return v.shape ? String(v.shape).split(',').reduce((a, b) => a * parseInt(b), 1)
                                              : atob(v.bdata).length / size[v.dtype];
    if (v.length && (Array.isArray(v[0]) || ArrayBuffer.isView(v[0]))) return [...v].reduce((s, r) => s + r.length, 0);
    return v.length || 0;
  };
  return {traces: g.data.map(t => [t.type, count(t.z) || count(t.x) || count(t.y) || count(t.values)
                                            || count(t.dimensions)]),
          bars: g.querySelectorAll('.barlayer .point').length,
          lines: g.querySelectorAll('.scatterlayer .trace').length,
          heatmaps: g.querySelectorAll('.heatmaplayer image, .hm image').length,
          height: g.getBoundingClientRect().height};
})"""


def _drawn_as_expected(drawn: list[dict], figures: list[list[tuple[str, int]]]) -> None:
    "plotly.js holds each figure's traces and points, and drew them: a bar per value, a layer per line, heatmaps."
    assert [d["traces"] for d in drawn] == [[list(t) for t in f] for f in figures]
    for d, f in zip(drawn, figures, strict=True):
        assert d["height"] > 100, d
        assert d["lines"] == sum(t == "scatter" for t, _ in f), d
        assert d["heatmaps"] == sum(t == "heatmap" for t, _ in f), d
        assert d["bars"] == sum(n for t, n in f if t == "bar"), d


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_function("() => [...document.querySelectorAll('div.mlops-wb-plotly')]"
                           ".every(d => d.querySelector('.js-plotly-plot svg.main-svg'))", timeout=60_000)


def test_a_plots_page_draws_every_figure_with_its_traces_and_points(page, site_url):
    expected = _expected("10_plots_drift.ipynb")
    assert expected and all(e["traces"] for e in expected)
    _open(page, f"{site_url}/nbs/10_plots_drift.html")
    _drawn_as_expected(page.evaluate(DRAWN), [e["traces"][0] for e in expected])
    assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)


def test_a_widget_page_shows_each_widgets_static_view(page, site_url):
    """The drift dashboard's page shows what each widget rendered statically: its tables with their rows, and its
    figures drawn with their traces. (The widgets' static views gain charts on their own schedule; this checks
    what they render, whatever it holds.)"""
    expected = [e for e in _expected("21_drift_widget.ipynb") if e["widget"]]
    assert expected, "the drift widget notebook displays no widget"
    _open(page, f"{site_url}/nbs/21_drift_widget.html")
    widgets = page.evaluate("""() => [...document.querySelectorAll('div.cell_output div.mlops-wb-widget')].map(o => ({
        rows: [...o.querySelectorAll('table')].map(t => t.querySelectorAll('tr').length),
        // drawn figures: plotly's graph divs with their SVG (one figure draws several svg.main-svg layers)
        figures: [...o.querySelectorAll('div.mlops-wb-plotly .js-plotly-plot')]
          .filter(g => g.querySelector('svg.main-svg')).length,
        visible: o.getBoundingClientRect().height}))""")
    assert len(widgets) == len(expected), widgets
    for want, got in zip(expected, widgets, strict=True):
        rows = _table_rows(want["html"])
        assert got["rows"] == rows and sum(rows) > 0 and got["visible"] > 50, (got, rows)
        assert got["figures"] == len(want["traces"]), got
    in_widgets = page.evaluate(DRAWN.replace("div.mlops-wb-plotly", "div.mlops-wb-widget div.mlops-wb-plotly"))
    _drawn_as_expected(in_widgets, [f for e in expected for f in e["traces"]])
    assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)


def test_the_landing_page_and_reference_open_offline(page, site_url):
    page.goto(f"{site_url}/index.html")
    assert page.locator("h1").first.inner_text().startswith("mlops_wb")
    page.goto(f"{site_url}/api/drift.html")
    entry = page.locator("[id='mlops_wb.drift.compute.compute_drift']")
    assert entry.count() == 1 and "compute_drift" in entry.inner_text()
    page.goto(f"{site_url}/search.html?q=compute_drift")
    page.wait_for_selector("#search-results li", timeout=30_000)
    assert page.locator("#search-results li").count() >= 1
    assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)
