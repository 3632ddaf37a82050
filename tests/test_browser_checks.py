"""The browser test's reader checks (tests/browser.py `defects`) fail on a page with each defect and pass on
a clean one: a test of the test, in headless Chromium (skipped where it is not installed)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser


PAGE = """<html><head><style>th {{ width: 24px; overflow-wrap: anywhere; }} td {{ padding: 2px; }}</style></head>
<body><article class="bd-article">{body}</article></body></html>"""
CLEAN = """<p>- a list shown as a paragraph would start like this, but this one is a sentence.</p>
<ul><li>HACNN (trained on originals): 1.10</li><li>BoT (ResNet-18): 0.90</li></ul>
<table><thead><tr><th style="width:auto">metric</th><th style="width:auto">p</th></tr></thead>
<tbody><tr><td>mAP</td><td>1.2e-05</td></tr><tr><td>HACNN</td><td>–</td></tr></tbody></table>"""
DEFECTS = """<p>- HACNN (trained on originals): 1.10 [0.92, 1.28] - HACNN (trained on copies): 0.9</p>
<table><thead><tr><th>metric</th><th>groups</th></tr></thead>
<tbody><tr><td>nan</td><td>True</td></tr><tr><td>hacnn</td><td>False</td></tr></tbody></table>"""


@pytest.fixture(scope="module")
def tab():
    if browser.CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt install chromium; .ci/run installs it)")
    with browser.Browser() as b:
        yield b


def _defects(tab, tmp_path: Path, body: str) -> dict[str, list[str]]:
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(body=body))
    tab.visit(page.as_uri(), settle=0.2)
    return tab.defects(browser.model_ids())


def test_each_defect_is_found(tab, tmp_path):
    found = _defects(tab, tmp_path, DEFECTS)
    assert found["glued_lists"] and found["broken_headers"]
    assert sorted(found["bad_cells"]) == ["False", "True", "nan"] and found["registry_ids"] == ["hacnn"]


def test_a_clean_page_has_none(tab, tmp_path):
    assert _defects(tab, tmp_path, CLEAN) == {"glued_lists": [], "broken_headers": [], "bad_cells": [],
                                              "registry_ids": []}
