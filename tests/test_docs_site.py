"""The static HTML docs in a real browser: headless Chromium opens every page from disk.

Checks: no console error or warning, no failed load, nothing requested but local
files (the site works offline), every page shows formulas laid out as math
(fractions with the numerator above the denominator, radicals wider than their
content), and the formulas paint pixels (a screenshot with them differs from one
with them hidden). CI installs Chromium; elsewhere the tests skip unless CI is set.
"""
import os
from pathlib import Path

import pytest

from browser import Chromium, find_chromium

HTML = Path(__file__).resolve().parent.parent / "generated" / "docs" / "html"
PAGES = sorted(HTML.rglob("*.html"))

LAYOUT = """(() => {
  const maths = [...document.querySelectorAll('math')];
  const fracs = [...document.querySelectorAll('mfrac')].map(f => {
    const [num, den] = [...f.children].map(c => c.getBoundingClientRect());
    return {numBottom: num.bottom, denTop: den.top};
  });
  const roots = [...document.querySelectorAll('msqrt')].map(r => ({
    outer: r.getBoundingClientRect().width,
    inner: [...r.children].reduce((w, c) => w + c.getBoundingClientRect().width, 0)}));
  return {
    count: maths.length,
    empty: maths.filter(m => { const b = m.getBoundingClientRect(); return !(b.width > 0 && b.height > 0); }).length,
    displays: [...new Set(maths.map(m => getComputedStyle(m).display))],
    fracs, roots,
    nav: getComputedStyle(document.querySelector('nav')).backgroundColor,
    title: document.title,
  };
})()"""


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    chromium = Chromium(executable)
    yield chromium
    chromium.close()


def test_there_are_pages():
    assert (HTML / "index.html").is_file()
    assert len(PAGES) > 10


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(HTML).as_posix() for p in PAGES])
def test_page_renders_offline_with_visible_formulas(browser, page):
    browser.open(page.as_uri())
    assert browser.problems() == []
    assert all(url.startswith("file://") for url in browser.requested_urls()), browser.requested_urls()
    layout = browser.evaluate(LAYOUT)
    assert layout["nav"] == "rgb(36, 41, 47)", "the stylesheet did not load"
    if page.name == "index.html":
        return
    assert layout["count"] > 0, "no formulas on the page"
    assert layout["empty"] == 0, "some formulas have no size"
    assert all("math" in display for display in layout["displays"]), layout["displays"]
    for frac in layout["fracs"]:
        assert frac["numBottom"] <= frac["denTop"] + 1, "a fraction is not laid out as a fraction"
    for root in layout["roots"]:
        assert root["outer"] > root["inner"], "a square root has no radical sign"


def test_formulas_paint_pixels(browser, tmp_path):
    browser.open((HTML / "adam.html").as_uri())
    box = browser.evaluate("(() => { const b = document.querySelector('.rule').getBoundingClientRect();"
                           " return {x: b.x, y: b.y, width: b.width, height: b.height}; })()")
    assert box["width"] > 100 and box["height"] > 100
    shown = browser.screenshot(clip=box)
    browser.evaluate("document.querySelectorAll('.rule math').forEach(m => m.style.visibility = 'hidden')")
    hidden = browser.screenshot(clip=box)
    (tmp_path / "adam-rule.png").write_bytes(shown)
    assert shown[:8] == b"\x89PNG\r\n\x1a\n"
    assert shown != hidden, "hiding the formulas changed nothing: they paint no pixels"
