"""The built site as a reader sees it, in a real headless Chromium.

``kadspec docs`` builds the site into ``docs/_build/html`` (ignored by git); Chromium loads the
index, a spec page, the traceability page, the model page (the lifecycle diagrams) and the
mutants page (one sequence diagram per mutant) and the test checks what a reader would notice:
every image loaded with a non-zero size, every link inside the site leads to a page and anchor
that exist, the traceability table has one row per requirement, and search finds a requirement.
Full-page screenshots are written to ``docs/_build/html/_screenshots/`` for a person to look at.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages separated by NUL bytes on file descriptors 3 and 4), so no Python package is needed.
The test is skipped only where Chromium is missing and CI is not set; on CI (CI=true) it must run,
and ``.ci/run`` installs Debian's ``chromium``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from click.testing import CliRunner

from kadspec.docs_command import docs, docs_source
from kadspec.models.mutants import MUTANTS
from kadspec.spec import requirements

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)
SITE: Path = docs_source() / "_build" / "html"
SCREENSHOTS = SITE / "_screenshots"
TRACEABILITY_CAPTIONS = (
    "Requirements, checks and mutants",
    "Requirements, proofs and tests",
    "Conformance by implementation",
)
LOAD_SECONDS = 60

pytestmark = [
    pytest.mark.skipif(
        BROWSER is None and os.environ.get("CI") != "true",
        reason="no Chromium here (CI installs Debian's chromium: apt-get install chromium)",
    ),
    pytest.mark.filterwarnings("ignore:'sphinx.environment.BuildEnvironment.app' is deprecated"),
    pytest.mark.filterwarnings("ignore:The frontend.Option"),
]


class Browser:
    """A headless Chromium with one page, spoken to over the DevTools protocol on a pipe."""

    def __init__(self, executable: str) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def wire_pipes() -> None:  # in the child: Chromium reads fd 3 and writes fd 4
            os.dup2(to_browser_read, 3)
            os.dup2(from_browser_write, 4)

        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",  # root, as on CI
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--allow-file-access-from-files",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes,
            pass_fds=(3, 4),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable", session=self.session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=self.session,
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self._events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < deadline:
            for index, seen in enumerate(self._events):
                if seen.get("method") == event:
                    del self._events[: index + 1]
                    return
            self._events.append(self._read())
        raise TimeoutError(f"no {event} within {LOAD_SECONDS} s")

    def open(self, url: str) -> None:
        self._events.clear()
        answer = self.call("Page.navigate", session=self.session, url=url)
        if answer.get("errorText"):
            raise RuntimeError(f"cannot open {url}: {answer['errorText']}")
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        answer = self.call(
            "Runtime.evaluate",
            session=self.session,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in answer:
            raise RuntimeError(f"page script failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """The whole page (up to 12,000 px tall) as a PNG."""
        metrics = self.call("Page.getLayoutMetrics", session=self.session)
        size = metrics["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12_000)}
        shot = self.call(
            "Page.captureScreenshot",
            session=self.session,
            format="png",
            captureBeyondViewport=True,
            clip={**clip, "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def screenshot_of(self, selector: str, path: Path) -> None:
        """The first element matching ``selector`` (with a margin), as a PNG."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + window.scrollX, r.y + window.scrollY, "
            "r.width, r.height]; })()"
        )
        x, y, width, height = box
        left, top = max(0, x - 16), max(0, y - 48)  # the rubric above a figure, too
        clip = {"x": left, "y": top, "width": width + 32, "height": height + 64}
        shot = self.call(
            "Page.captureScreenshot",
            session=self.session,
            format="png",
            captureBeyondViewport=True,
            clip={**clip, "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):  # it may be gone already
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


# What a page shows, read in the page itself once every image has loaded or failed.
READ_PAGE = """(async () => {
  const images = [...document.images];
  await Promise.all(images.map(i => i.complete ? null :
    new Promise(done => { i.onload = done; i.onerror = done; })));
  return {
    title: document.title,
    images: images.map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth,
                              height: i.naturalHeight, diagram: i.classList.contains(
                                'kadspec-diagram')})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    tables: [...document.querySelectorAll('table')].map(t => ({
      caption: t.caption ? t.caption.textContent : '',
      rows: [...t.tBodies].flatMap(b => [...b.rows]).map(r => r.cells[0].textContent.trim()),
    })),
  };
})()"""


@pytest.fixture(scope="module")
def site() -> Path:
    """The site, built by ``kadspec docs`` as a user would (warnings fail it)."""
    result = CliRunner().invoke(docs, ["--out", str(SITE)])
    assert result.exit_code == 0, result.output
    assert (SITE / "index.html").as_uri() in result.output
    SCREENSHOTS.mkdir(exist_ok=True)
    return SITE


@pytest.fixture(scope="module")
def browser(site: Path) -> Iterator[Browser]:
    assert BROWSER is not None, "CI=true but no Chromium: .ci/run must install chromium"
    chromium = Browser(BROWSER)
    try:
        yield chromium
    finally:
        chromium.close()


def read(browser: Browser, site: Path, page: str) -> dict[str, Any]:
    """Open ``page`` (a file of the site), save its screenshot and return what it shows."""
    browser.open((site / page).as_uri())
    shown: dict[str, Any] = browser.evaluate(READ_PAGE)
    browser.screenshot(SCREENSHOTS / page.replace("/", "-").replace(".html", ".png"))
    return shown


def broken_links(site: Path, links: list[str]) -> list[str]:
    """Links into the site whose file, or whose #anchor in that file, does not exist."""
    broken = []
    for link in links:
        parts = urlsplit(link)
        if parts.scheme != "file":
            continue  # the web is not checked offline
        target = Path(unquote(parts.path))
        if not target.is_file() or site.resolve() not in target.resolve().parents:
            broken.append(link)
        elif parts.fragment and target.suffix == ".html":
            text = target.read_text("utf-8")
            if f'id="{unquote(parts.fragment)}"' not in text:
                broken.append(link)
    return broken


def assert_images_loaded(shown: dict[str, Any]) -> None:
    empty = [i["src"] for i in shown["images"] if i["width"] <= 0 or i["height"] <= 0]
    assert not empty, f"images that did not load or have no size: {empty}"


@pytest.mark.parametrize(
    "page",
    [
        "index.html",
        "spec.html",
        "traceability.html",
        "guides/read-a-counterexample.html",
        "api.html",
    ],
)
def test_a_page_has_no_broken_link_or_image(browser: Browser, site: Path, page: str) -> None:
    shown = read(browser, site, page)
    assert shown["title"], f"{page} has no title"
    assert_images_loaded(shown)
    assert not broken_links(site, shown["links"])


def test_the_traceability_table_has_one_row_per_requirement(browser: Browser, site: Path) -> None:
    shown = read(browser, site, "traceability.html")
    for caption in TRACEABILITY_CAPTIONS:
        tables = [t for t in shown["tables"] if caption in t["caption"]]
        assert len(tables) == 1, [t["caption"] for t in shown["tables"]]
        assert tables[0]["rows"] == list(requirements()), caption


def test_the_model_page_shows_the_four_lifecycle_diagrams(browser: Browser, site: Path) -> None:
    shown = read(browser, site, "model.html")
    diagrams = [i for i in shown["images"] if i["diagram"]]
    names = sorted(Path(urlsplit(i["src"]).path).name.split("-")[1] for i in diagrams)
    assert names == ["addresses", "admission", "lifecycle", "provide"]
    assert_images_loaded(shown)
    assert not broken_links(site, shown["links"])


def test_the_mutants_page_shows_a_sequence_diagram_per_mutant(browser: Browser, site: Path) -> None:
    shown = read(browser, site, "mutants.html")
    first = next(iter(MUTANTS))
    # The whole page is taller than its screenshot: keep the first mutant's diagram on its own.
    browser.screenshot_of(f"#sequence-{first} + figure", SCREENSHOTS / f"mutant-{first}.png")
    diagrams = [i for i in shown["images"] if i["diagram"]]
    assert len(diagrams) == len(MUTANTS)
    for name in MUTANTS:
        assert any(f"kadspec-{name}-" in i["src"] for i in diagrams), name
    assert_images_loaded(shown)
    assert not broken_links(site, shown["links"])


def test_search_finds_a_requirement(browser: Browser, site: Path) -> None:
    rid = next(iter(requirements()))
    browser.open((site / "search.html").as_uri() + f"?q={rid}")
    found = browser.evaluate(
        """(async () => {
          for (let i = 0; i < 100; i++) {
            const hits = document.querySelectorAll('#search-results li');
            if (hits.length) return [...hits].map(h => h.textContent);
            await new Promise(done => setTimeout(done, 100));
          }
          return [];
        })()"""
    )
    browser.screenshot(SCREENSHOTS / "search.png")
    assert found, f"search for {rid} found nothing"
