"""A real browser for the tests: Debian's Chromium driven by Playwright for Python.

Never ``playwright install`` (it downloads): the system Chromium at ``/usr/bin/chromium`` is
used. Without it (or without Playwright), :func:`chromium` skips the test with a reason that
says how to get it, and ``pytest -ra`` lists the skip.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium browser (Playwright's ``Browser``)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip("NO BROWSER TEST: Debian's chromium is not installed "
                    "(apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("NO BROWSER TEST: playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()
