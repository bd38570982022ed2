"""Every lab run in JupyterLab in headless chromium (browser_check.py says what it asserts): the labs
and the dashboard run there, then the labs executed in recorded mode in this session (the `executed_lab`
fixture) are opened untrusted without running them."""
from __future__ import annotations

import pytest

import browser_check
from checks_support import chromium  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser


def test_every_lab_renders_in_chromium(chromium, executed_lab):
    executed_lab.all("recorded")
    assert browser_check.main(["--labs-executed-since", str(executed_lab.started_s)]) == 0, \
        "browser check failed: the lines under 'browser check FAILED' above name each lab and failure"
