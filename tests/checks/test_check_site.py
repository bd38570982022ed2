"""The static site built from the labs executed in recorded mode in this session (the `executed_lab`
fixture), then every page opened in headless chromium with the network blocked but 127.0.0.1
(site_check.py says what it asserts, its planted failures first)."""
from __future__ import annotations

import pytest

import site_check
from checks_support import chromium, shown  # noqa: F401  (fixtures)

pytestmark = pytest.mark.site


def test_every_site_page_shows_offline(chromium, executed_lab, shown):
    executed_lab.all("recorded")
    with shown():
        rc = site_check.main(["--labs-executed-since", str(executed_lab.started_s)])
    assert rc == 0, \
        "site check failed: the lines under 'site check FAILED' above name each page and failure"
