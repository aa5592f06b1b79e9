"""The fabric matrix's report as a person sees it: made from a small
fixture results.json, loaded in headless Chromium (Debian's chromium;
`make matrix-deps` installs it, as .ci/run does). The screenshot is not
blank and shows the grid and the plots; the DOM holds every cell, every
skip reason and the failure. Without chromium these skip, saying so."""
import html
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # ci/ is no installed package
from ci.matrix import render, report  # noqa: E402

FIXTURE = Path(__file__).with_name("fixture_results.json")


def _need_chromium():
    if render.chromium() is None:
        pytest.skip("no chromium here, so the report cannot be rendered "
                    "(Debian: apt-get install chromium, or `make matrix-deps`)")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    _need_chromium()
    out = tmp_path_factory.mktemp("report")
    data = json.loads(FIXTURE.read_text())
    report.write(data, out / "report.html")
    render.screenshot(out / "report.html", out / "report.png")
    print(f"screenshot: {out / 'report.png'}")
    return data, render.dom(out / "report.html"), out / "report.png"


def test_screenshot_shows_the_grid_and_the_plots(rendered):
    data, dom, png = rendered
    assert render.check(dom, png, len(data["cells"])) == []
    assert dom.count('<img class="plot"') == 2  # latency and bandwidth


def test_every_cell_reason_and_failure_is_in_the_page(rendered):
    data, dom, _ = rendered
    text = html.unescape(dom)  # Chromium serialises entities its own way
    for cell in data["cells"]:
        assert f'title="{cell["id"]}: {cell["status"]}' in text, cell["id"]
    for reason in {c["reason"] for c in data["cells"] if c["status"] == "skipped"}:
        assert reason in text
    assert 'id="f1"' in text and "F1 docker/tcp/pubsub" in text and "a subscriber missed a/17" in text
    assert "13 passed · 1 failed · 10 skipped" in " ".join(re.sub(r"<[^>]+>", "", text).split())
    assert "+60%" in text  # the regression against the previous run


def test_a_page_without_grid_or_plots_fails_the_check(tmp_path):
    _need_chromium()
    html = tmp_path / "blank.html"
    html.write_text("<!doctype html><html><body><p>nothing</p></body></html>")
    render.screenshot(html, tmp_path / "blank.png")
    problems = " / ".join(render.check(render.dom(html), tmp_path / "blank.png", 24))
    for want in ("no grid table", "the grid has 0 cells", "no plot image", "blank", "no passed cell",
                 "no plot line"):
        assert want in problems, problems
