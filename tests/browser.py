"""A headless Chromium driven over the DevTools protocol, for the book's real-browser test.

Written here because the usual drivers (Playwright, Selenium) download their own browsers; this
one starts Debian's `chromium` with every host name unresolvable (the book must read offline) and
speaks the protocol through tornado's websocket client, already installed with Jupyter.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tornado.websocket import websocket_connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1300,1000"]


@dataclass
class PageReport:
    """What one page did: broken images, console errors, and the number of typeset equations."""

    url: str
    broken_images: list[str] = field(default_factory=list)
    images: int = 0
    errors: list[str] = field(default_factory=list)
    text: str = ""
    equations: int = 0


class Browser:
    """One Chromium tab; `visit` loads a URL and reports on it, `screenshot` saves a PNG."""

    def __init__(self, timeout: float = 30.0):
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed (Debian: apt install chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, "--remote-debugging-port=0",
                                      f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        self.ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        self.loop = asyncio.new_event_loop()

        async def connect():
            return await websocket_connect(self.ws_url, max_message_size=64 * 2**20)

        self.ws = self.loop.run_until_complete(connect())
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
            self.loop.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def _recv_until(self, predicate) -> dict:
        while True:
            raw = await asyncio.wait_for(self.ws.read_message(), self.timeout)
            if raw is None:
                raise RuntimeError("the DevTools connection closed")
            msg = json.loads(raw)
            if predicate(msg):
                return msg
            if "method" in msg:
                self.events.append(msg)

    def call(self, method: str, **params) -> dict:
        """Send one protocol command and return its result (events seen meanwhile are kept)."""
        i = next(self.ids)
        self.ws.write_message(json.dumps({"id": i, "method": method, "params": params}))
        msg = self.loop.run_until_complete(self._recv_until(lambda m: m.get("id") == i))
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result", {})

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return res.get("result", {}).get("value")

    def visit(self, url: str, settle: float = 1.0) -> PageReport:
        """Load `url`, wait for it and for MathJax, and report broken images and console errors."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        if not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.loop.run_until_complete(self._recv_until(lambda m: m.get("method") == "Page.loadEventFired"))
        self.evaluate("window.MathJax && MathJax.startup ? MathJax.startup.promise.then(() => true) : true")
        time.sleep(settle)
        self.call("Runtime.evaluate", expression="0")  # collect events that arrived meanwhile
        report = PageReport(url)
        report.images = self.evaluate("document.images.length")
        report.broken_images = self.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        report.equations = self.evaluate("document.querySelectorAll('mjx-container').length")
        report.text = self.evaluate("document.body.innerText") or ""
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                report.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif m == "Runtime.exceptionThrown":
                report.errors.append(p["exceptionDetails"].get("exception", {}).get("description", "exception"))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                report.errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
        return report

    def layout(self) -> dict:
        """The current page's height, the height of its visible code (collapsed cells count only
        their toggle) and its share of the article, in CSS pixels."""
        return self.evaluate("""(() => {
            const art = document.querySelector('article.bd-article') || document.body;
            let code = 0;
            art.querySelectorAll('div.cell_input').forEach(el => {  // a closed <details> keeps its box in Chrome
                if (el.offsetParent !== null && !el.closest('details:not([open])'))
                    code += el.getBoundingClientRect().height; });
            const page = document.documentElement.scrollHeight, article = art.getBoundingClientRect().height;
            return {page_px: page, article_px: Math.round(article), code_px: Math.round(code),
                    code_share: article ? code / article : 0};
        })()""")

    def too_wide(self) -> list[str]:
        """Tables and code blocks wider than the space they are shown in (a reader would have to scroll
        sideways), with every collapsed cell opened first; each as 'TAG: first words (+N px)'."""
        return self.evaluate("""(() => {
            document.querySelectorAll('details').forEach(d => { d.open = true; });
            const art = document.querySelector('article.bd-article') || document.body;
            const bad = [];
            const scrolls = el => { for (let a = el.parentElement; a && a !== art; a = a.parentElement) {
                const o = getComputedStyle(a).overflowX; if (o === 'auto' || o === 'scroll') return true; }
                return false; };
            art.querySelectorAll('table, pre').forEach(el => {
                if (el.tagName === 'TABLE' && scrolls(el)) return;  // a wide table in its own scrolling box
                const room = el.tagName === 'PRE' ? el.clientWidth : el.parentElement.clientWidth;
                const over = el.scrollWidth - room;
                if (el.offsetParent !== null && over > 1)
                    bad.push(`${el.tagName}: ${(el.innerText || '').replace(/\\s+/g, ' ').slice(0, 50)} (+${over} px)`);
            });
            return bad;
        })()""")

    def defects(self, ids: list[str]) -> dict[str, list[str]]:
        """What a reader should never meet on a page, each as a short excerpt: a Markdown list glued into one
        paragraph ("- a - b"), a table header broken inside a word, a table cell reading nan/NaN/True/False,
        a registry id (`ids`, e.g. hacnn) in a table cell where a display name exists."""
        return self.evaluate("""((ids) => {
            const art = document.querySelector('article.bd-article') || document.body;
            const out = {glued_lists: [], broken_headers: [], bad_cells: [], registry_ids: []};
            art.querySelectorAll('p').forEach(p => {
                const t = p.innerText.trim();
                if (/^- /.test(t) && / - [A-Za-z0-9(]/.test(t.slice(2))) out.glued_lists.push(t.slice(0, 60));
            });
            const canvas = document.createElement('canvas').getContext('2d');
            art.querySelectorAll('table th').forEach(th => {
                if (th.offsetParent === null) return;
                const style = getComputedStyle(th);
                canvas.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
                const room = th.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
                const pieces = th.innerText.split(/\\s+/).flatMap(w => w.split(/(?<=-)/));  // a break after a hyphen is fine
                const longest = Math.max(0, ...pieces.map(w => canvas.measureText(w).width));
                if (longest > room + 1) out.broken_headers.push(th.innerText.trim().slice(0, 40));
            });
            art.querySelectorAll('table td, table tbody th').forEach(td => {
                const t = td.innerText.trim();
                if (['nan', 'NaN', 'True', 'False'].includes(t)) out.bad_cells.push(t);
                if (ids.includes(t)) out.registry_ids.push(t);
            });
            return out;
        })(%s)""" % json.dumps(ids))

    def screenshot(self, path: Path, full: bool = False, max_height: int = 20000) -> Path:
        """Save the current page as a PNG: the window, or (`full`) the whole page down to `max_height` px."""
        params = {"format": "png"}
        if full:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size[0], "height": min(size[1], max_height), "scale": 1})
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


SHOTS = {"findings_claims": ("notebooks/00_findings.html", "the-claims-one-by-one"),
         "findings_controls": ("notebooks/00_findings.html", "every-measure-against-both-controls"),
         "controls_figure": ("notebooks/08_where_models_look.html", "fig-face-share-controls")}


def element_shot(b: "Browser", element_id: str, path: Path, max_height: int = 3000) -> Path | None:
    """Save one element of the current page (a section or a figure, by id) as a PNG, the window made as tall
    as the page first (so the layout measured is the layout captured); None when the page has no such element."""
    width, height = b.evaluate("[window.innerWidth, document.documentElement.scrollHeight]")
    b.call("Emulation.setDeviceMetricsOverride", width=width, height=min(height, 20000), deviceScaleFactor=1,
           mobile=False)
    try:
        time.sleep(0.3)
        box = b.evaluate("""((id) => { const el = document.getElementById(id); if (!el) return null;
            window.scrollTo(0, 0); const r = el.getBoundingClientRect();
            return [r.left, r.top, r.width, r.height]; })(%s)""" % json.dumps(element_id))
        if not box:
            return None
        clip = {"x": box[0], "y": box[1], "width": box[2], "height": min(box[3], max_height), "scale": 1}
        data = b.call("Page.captureScreenshot", format="png", clip=clip)["data"]
    finally:
        b.call("Emulation.clearDeviceMetricsOverride")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(data))
    return path


def shots(html: Path, out: Path) -> list[Path]:
    """The book's review screenshots (`SHOTS`: Findings' claims and controls, chapter 8's controls figure)."""
    saved = []
    with Browser() as b:
        for name, (page, element_id) in SHOTS.items():
            if (Path(html) / page).is_file():
                b.visit((Path(html) / page).resolve().as_uri(), settle=0.5)
                got = element_shot(b, element_id, Path(out) / f"{name}.png")
                saved += [got] if got else []
    return saved


def book_pages(html: Path) -> list[Path]:
    """Every page of a built book (its `_build/html`), in reading order: the introduction, the
    chapters, then "Run it on your data", the paper's tables and the glossary."""
    html = Path(html).resolve()
    return [html / "book" / "intro.html", *sorted((html / "notebooks").glob("*.html")),
            *(html / "book" / f"{n}.html" for n in ("your_data", "paper_tables", "glossary"))]


def model_ids() -> list[str]:
    """Registry ids the book should show by their display names (a table cell holding one is a defect)."""
    from reidlib.core import registry

    return [m for m, spec in registry.MODELS.items() if spec.display != m]


def check_book(html: Path, shots: Path, ids: list[str] | None = None) -> dict:
    """Every page of a built book (its `_build/html`) read as the browser test reads it: a full-page screenshot
    of each into `shots` (with `page_metrics.csv`), and what is wrong, by kind (empty when nothing is); `ids`:
    the registry ids no table may show (default `model_ids()`)."""
    import pandas as pd

    ids = model_ids() if ids is None else ids

    html, shots = Path(html), Path(shots)
    pages = [p for p in book_pages(html) if p.is_file()]
    uncaptioned, too_wide, uncited, misnumbered, metrics, defects = {}, {}, [], {}, [], {}
    spans = 0
    with Browser() as b:
        reports = []
        for p in pages:
            reports.append(b.visit(p.as_uri()))
            b.screenshot(shots / f"{p.parent.name}_{p.stem}.png", full=True)
            bad = b.evaluate("Array.from(document.querySelectorAll('article.bd-article img')).filter(i => "
                             "!(i.closest('figure') && i.closest('figure').querySelector('figcaption')) || "
                             "!i.alt || /[0-9a-f]{16}|\\.png$/.test(i.alt)).map(i => i.alt || i.src)")
            if bad:
                uncaptioned[p.name] = bad
            figures = b.evaluate("document.querySelectorAll('article.bd-article figure').length")
            if figures and not b.evaluate("document.querySelectorAll('article.bd-article span.std-numref').length"):
                uncited.append(p.name)
            chapter = p.stem.split("_")[0].lstrip("0")
            numbers = b.evaluate("Array.from(document.querySelectorAll('article.bd-article figcaption "
                                 "span.caption-number')).map(s => s.textContent.trim())")
            expected = [f"Fig. {chapter}.{i}" if chapter.isdigit() else f"Fig. {i}" for i in range(1, len(numbers) + 1)]
            if numbers != expected:
                misnumbered[p.name] = numbers
            metrics.append({"page": f"{p.parent.name}/{p.stem}", **b.layout()})
            found = {k: v for k, v in b.defects(ids).items() if v}
            if found:
                defects[p.name] = found
            wide = b.too_wide()  # opens every collapsed cell: measured after the layout
            if wide:
                too_wide[p.name] = wide
            if p.stem == "paper_tables":
                spans = b.evaluate("document.querySelectorAll('article.bd-article th[colspan=\"2\"]').length")
        b.visit((html / "genindex.html").as_uri())
        index_terms = b.evaluate("document.querySelectorAll('table.indextable li').length")
    shots.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(metrics).to_csv(shots / "page_metrics.csv", index=False)
    return {"pages": len(pages), "index_terms": index_terms, "uncaptioned": uncaptioned, "uncited": uncited,
            "misnumbered": misnumbered, "too_wide": too_wide, "defects": defects, "spans": spans,
            "problems": [(r.url, r.broken_images, r.errors) for r in reports if r.broken_images or r.errors],
            "reports": reports}


def measure(html: Path) -> list[dict]:
    """Height, code share and too-wide elements of every page of a built book (its `_build/html`)."""
    rows = []
    with Browser() as b:
        for p in book_pages(html):
            if p.is_file():
                b.visit(p.as_uri(), settle=0.5)
                rows.append({"page": f"{p.parent.name}/{p.stem}", **b.layout(), "too_wide": len(b.too_wide())})
    return rows


if __name__ == "__main__":  # python tests/browser.py _build/html [shots OUT | check OUT]: heights and code shares,
    import sys  # the review screenshots, or the browser test's checks on any built book (screenshots kept in OUT)

    if len(sys.argv) > 3 and sys.argv[2] == "check":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        report = check_book(Path(sys.argv[1]).resolve(), Path(sys.argv[3]))  # file URIs need an absolute path
        print(json.dumps({k: v for k, v in report.items() if k != "reports"}, indent=1))
        bad = [k for k in ("uncaptioned", "uncited", "misnumbered", "too_wide", "defects", "problems") if report[k]]
        sys.exit(1 if bad else 0)
    if len(sys.argv) > 3 and sys.argv[2] == "shots":
        for p in shots(Path(sys.argv[1]), Path(sys.argv[3])):
            print(p)
        sys.exit(0)

    for r in measure(Path(sys.argv[1])):
        print(f"{r['page']:36s} page {r['page_px']:6d} px  code {r['code_px']:5d} px  "
              f"{100 * r['code_share']:4.1f}% of the article  too wide: {r['too_wide']}")
