"""The course site: `make site` builds it from the committed notebooks (nothing
re-executed, nothing downloaded), every internal link resolves, and a real browser finds
the home page, notebook 11's table and chart, and `async_scoped_session` through the
site's own offline search. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from dbkit.settings import PROJECT_ROOT

SITE = PROJECT_ROOT / "build" / "site"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def site() -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "tools.site"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return SITE


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value:
                self.links.append(value)


def parse(page: Path) -> Links:
    found = Links()
    found.feed(page.read_text())
    return found


def test_every_notebook_has_a_page_with_its_minutes_and_ways_to_run_it(site: Path) -> None:
    for notebook in sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        page = site / "notebooks" / f"{notebook.stem}.html"
        html = page.read_text()
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))  # as a person reads it
        assert re.search(r"Run it · \d+ min teaching \+ \d+ min exercise", text), page.name
        assert "make lab" in text and "mybinder.org/v2/" in html and "git-pull?" in html


def test_every_notebook_has_a_korean_page_and_each_links_the_other(site: Path) -> None:
    for notebook in sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        english = site / "notebooks" / f"{notebook.stem}.html"
        korean = site / "ko" / "notebooks" / f"{notebook.stem}.html"
        assert f"../ko/notebooks/{notebook.stem}.html" in parse(english).links, english.name
        assert f"../../notebooks/{notebook.stem}.html" in parse(korean).links, korean.name
        html = korean.read_text()
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
        assert '<html lang="ko"' in html
        assert re.search(r"실행하기 · 강의 \d+분 \+ 연습 문제 \d+분", text), korean.name
        assert f"notebooks/ko/{notebook.name}" in text  # the Korean notebook to open
    assert "ko/index.html" in parse(site / "index.html").links
    assert "../index.html" in parse(site / "ko" / "index.html").links


def test_every_internal_link_resolves(site: Path) -> None:
    pages = {p: parse(p) for p in site.rglob("*.html") if not p.is_relative_to(site / "_static")}
    broken = []
    for page, found in pages.items():
        for link in found.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)} -> {link} (no such anchor)")
    assert not broken, broken[:20]


chromium = next(filter(None, map(shutil.which, ["chromium", "chromium-browser"])), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    args = ["--headless=new", "--disable-gpu", "--no-first-run", "--disable-sync"]
    args += ["--disable-background-networking", "--disable-component-update", "--no-sandbox"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        yield browser
        browser.close()


def test_the_site_reads_in_a_browser_and_its_search_works_offline(site: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto((site / "index.html").as_uri())
        expect(page.locator("h1").first).to_contain_text("Async database connections")
        page.screenshot(path=str(ARTIFACTS / "site-home.png"))

        page.goto((site / "notebooks" / "05_sessions.html").as_uri())
        table = page.locator(".cell_output table.dataframe").first  # a pandas table
        table.scroll_into_view_if_needed()
        expect(table).to_be_visible()
        expect(table.locator("th").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "site-notebook-05.png"))

        page.goto((site / "notebooks" / "11_what_a_request_costs.html").as_uri())
        chart = page.locator(".cell_output img").first  # a matplotlib chart
        chart.scroll_into_view_if_needed()
        expect(chart).to_be_visible()
        assert chart.evaluate("img => img.naturalWidth") > 100  # the image really loaded
        page.screenshot(path=str(ARTIFACTS / "site-notebook-11.png"))

        page.goto((site / "search.html").as_uri() + "?q=async_scoped_session")
        hit = page.locator("#search-results a[href*='06_scoped_session']").first
        expect(hit).to_be_visible(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "site-search.png"))
    finally:
        page.close()
    outside = [u for u in requests if not u.startswith(("file://", "data:", "blob:"))]
    assert not outside, f"the site fetched from the network: {outside[:5]}"
