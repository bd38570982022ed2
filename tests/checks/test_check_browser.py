"""Every lab run in JupyterLab in headless chromium (browser_check.py says what it asserts): the labs
and the dashboard run there, then the labs executed in recorded mode in this session (the `executed_lab`
fixture) are opened untrusted without running them."""
from __future__ import annotations

import pytest

import browser_check
from checks_support import chromium, shown  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def test_every_lab_renders_in_chromium(chromium, executed_lab, shown):
    executed_lab.all("recorded")
    with shown():
        rc = browser_check.main(["--labs-executed-since", str(executed_lab.started_s)])
    assert rc == 0, \
        "browser check failed: the lines under 'browser check FAILED' above name each lab and failure"
