"""Headless Chromium for the tests of pages (the report, the web export): skip markers that say
what is missing, and a page that records console errors and network requests."""

from __future__ import annotations

import contextlib
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright


# a module's `pytestmark`: skip, saying what to install, where Chromium or Playwright is missing
BROWSER_MARKS = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium): apt-get install chromium"),
    pytest.mark.skipif(_playwright() is None, reason="needs Playwright to drive Chromium: pip install playwright"),
]


def needs_browser(test):
    """BROWSER_MARKS on one test."""
    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


@contextlib.contextmanager
def chromium(viewport=(1300, 900)):
    """(browser, new_page): new_page(uri) opens a page whose .errors and .requests (anything but
    file: and data: URLs) the test can check."""
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])

        def new_page(uri: str):
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.errors, page.requests = [], []
            page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.on("request", lambda r: page.requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(uri)
            return page

        try:
            yield new_page
        finally:
            browser.close()
