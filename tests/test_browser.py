"""The lab in a real browser: `make lab` serves JupyterLab, headless Chromium opens
notebook 00, clears its outputs, runs all cells through the JupyterLab UI, and the last
cell's output appears. A screenshot is kept in test-artifacts/ for a person to look at.

It runs a copy of notebook 00 (so nothing the browser does can touch the committed one)
and skips, saying why, only where Chromium or Playwright is not installed (CI installs
Debian's chromium)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbkit.settings import PROJECT_ROOT
from tests.helpers import running_lab

TOKEN = "course-browser-token"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
COPY = PROJECT_ROOT / "notebooks" / "browser_test_00_setup.ipynb"

chromium = next(filter(None, map(shutil.which, ["chromium", "chromium-browser"])), None)
if chromium is None:
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")


@pytest.fixture
def notebook_copy() -> Iterator[Path]:
    # a copy: nothing the browser does can touch the committed notebook
    shutil.copy(PROJECT_ROOT / "notebooks" / "00_setup.ipynb", COPY)
    yield COPY
    COPY.unlink(missing_ok=True)


def menu(page, menu_name: str, item: str) -> None:  # type: ignore[no-untyped-def]
    """Click a JupyterLab menu item, as a person would."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu_name}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).first.click()


def test_notebook_00_runs_in_jupyterlab_in_chromium(notebook_copy: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "browser-notebook-00.png"
    args = [
        "--headless=new",
        "--disable-gpu",
        "--no-first-run",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
    ]
    # Chromium's sandbox refuses root and needs user namespaces that containers often lack;
    # this browser only ever opens the test's own lab on 127.0.0.1
    args.append("--no-sandbox")
    # a namespace of its own, so its databases cannot collide with nbval's notebook 00
    namespace = os.environ["DBKIT_NAMESPACE"] + "browser"
    with running_lab(TOKEN, DBKIT_NAMESPACE=namespace) as port, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(
                f"http://127.0.0.1:{port}/lab/tree/notebooks/{notebook_copy.name}?reset&token={TOKEN}"
            )
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            page.locator(".jp-Notebook").first.click()
            menu(page, "Edit", "Clear Outputs of All Cells")
            last_output = page.locator(".jp-Notebook .jp-OutputArea-output").filter(
                has_text="exercise ok"
            )
            sync_api.expect(last_output).to_have_count(0, timeout=10_000)
            menu(page, "Run", "Run All Cells")
            sync_api.expect(last_output).to_have_count(1, timeout=120_000)
            errors = page.locator(".jp-Notebook [data-mime-type='application/vnd.jupyter.stderr']")
            assert errors.count() == 0
        finally:
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot: {screenshot.relative_to(PROJECT_ROOT)}")
            browser.close()
