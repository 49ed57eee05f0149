"""The HTML report in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

One browser serves the module (starting Chromium takes seconds). Skipped, with the reason, where
no browser or driver is installed; .ci/run installs both.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from report_rows import BROKEN, decoder_rows

from pytest_llmprec.report.html import ReportContext, Section, write_html_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no browser: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1600",
)  # fmt: skip
"""Without the networking flags Chromium's own connections are refused on a closed network and
show up as console errors."""


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (test extra) is not installed")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="llmprec-chromium-")
    options = webdriver.ChromeOptions()
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    rows = decoder_rows(folder / "dumps", layers=4, tokens=2)
    opcheck = [{"op_id": f"{i}_0", "op_name": "LinearOperation", "precision_result": "PASS" if i % 3 else "FAILED",
                "max_rel_error": i * 1e-4} for i in range(7)]  # fmt: skip
    context = ReportContext.from_rows(rows, golden=str(folder / "dumps" / "golden"), my=str(folder / "dumps" / "my"),
                                      sections=[Section("Operator checks", opcheck)])  # fmt: skip
    return write_html_report(folder / "report" / "llmprec_report_1.html", rows, context)


def open_page(browser, report: Path, fragment: str = ""):
    browser.get(report.as_uri() + fragment)
    browser.find_element("css selector", "#pairs-table tbody tr")  # the script has rendered the table
    return browser


def shown(browser, table: str = "#pairs-table") -> list[list[str]]:
    """The cells of the rows the table shows (read in one script call, not one per cell)."""
    script = (
        "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))"
        ".map(function (row) { return Array.from(row.cells).map(function (c) { return c.textContent; }); });"
    )
    return browser.execute_script(script, table)


def header_index(browser, label: str, table: str = "#pairs-table") -> int:
    script = (
        "return Array.from(document.querySelectorAll(arguments[0] + ' thead th')).map(function (th) "
        "{ return th.textContent; });"
    )
    return browser.execute_script(script, table).index(label)


def test_the_page_loads_without_console_errors(browser, report):
    open_page(browser, report)
    problems = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert problems == []
    assert browser.execute_script("return Object.keys(window.llmprecTables).sort()") == ["pairs", "section-0"]


def test_the_plots_and_the_first_divergence_annotation_are_drawn(browser, report):
    open_page(browser, report)
    plots = browser.find_elements("css selector", "svg.plot")
    assert [p.get_attribute("id") for p in plots] == ["plot-token-0", "plot-token-1"]
    assert plots[0].size["width"] > 600 and plots[0].size["height"] > 150
    annotation = browser.find_element("css selector", "#plot-token-0 g.first-divergence text")
    layer, node = BROKEN
    assert annotation.text == f"first divergence: token0/root.model.layers.{layer}.{node}/output"
    assert annotation.is_displayed()
    assert browser.find_element("css selector", "#first-divergence").is_displayed()


def test_filtering_by_name_status_and_metric(browser, report):
    open_page(browser, report)
    assert len(shown(browser)) == 24
    count = browser.find_element("css selector", "#pairs-table .count")
    name = browser.find_element("css selector", "#pairs-table .filter-name")
    name.send_keys("mlp.act_fn")
    pair = header_index(browser, "pair")
    assert [row[pair] for row in shown(browser)] == [
        f"token{t}/root.model.layers.{layer}.mlp.act_fn/output" for t in (0, 1) for layer in range(4)
    ]
    assert count.text == "8 of 24 rows"
    name.clear()
    name.send_keys("/layers\\.[23]\\.mlp\\.down/")
    assert len(shown(browser)) == 4
    name.clear()
    name.send_keys(" ")  # an input event with nothing to match: every row again
    assert len(shown(browser)) == 24
    status = browser.find_element("css selector", "#pairs-table .filter-status")
    status.find_element("css selector", "option[value=failed]").click()
    verdict = header_index(browser, "verdict")
    assert [row[verdict] for row in shown(browser)] == ["failed", "failed"]
    status.find_element("css selector", "option[value='']").click()
    metric = browser.find_element("css selector", "#pairs-table .filter-metric")
    metric.find_element("xpath", "option[text()='RED']").click()
    browser.find_element("css selector", "#pairs-table .filter-value").send_keys("0.01")
    assert [row[verdict] for row in shown(browser)] == ["failed", "failed"]


def test_sorting_by_a_column(browser, report):
    open_page(browser, report)
    column = header_index(browser, "1-cos")
    browser.find_elements("css selector", "#pairs-table thead th")[column].click()
    browser.find_elements("css selector", "#pairs-table thead th")[column].click()  # descending
    pair = header_index(browser, "pair")
    layer, node = BROKEN
    assert {row[pair] for row in shown(browser)[:2]} == {
        f"token{t}/root.model.layers.{layer}.{node}/output" for t in (0, 1)
    }


def test_a_link_fragment_filters_and_file_links_point_at_the_tensors(browser, report):
    open_page(browser, report, "#filter=token1%2Froot.model.layers.2.mlp.down_proj")
    rows = shown(browser)
    assert len(rows) == 1
    links = browser.find_elements("css selector", "#pairs-table tbody tr a")
    targets = [unquote(link.get_attribute("href").removeprefix("file://")) for link in links]
    node = report.parent.parent / "dumps" / "{}" / "1" / "root.model.layers.2.mlp.down_proj" / "output.npy"
    assert targets == [str(node).format("golden"), str(node).format("my")]
    assert all(Path(t).is_file() for t in targets)


def test_the_extra_section_is_a_table_too(browser, report):
    open_page(browser, report)
    section = "div[data-table=section-0]"
    assert len(shown(browser, section)) == 7
    browser.find_element("css selector", f"{section} .filter-status option[value=FAILED]").click()
    assert [row[0] for row in shown(browser, section)] == ["0_0", "3_0", "6_0"]


def test_pointing_at_a_plot_names_the_pair_and_a_click_selects_it(browser, report):
    from selenium.webdriver import ActionChains

    open_page(browser, report)
    hover = browser.find_element("css selector", "#plot-token-1 rect.hover")
    ActionChains(browser).move_to_element_with_offset(hover, -hover.size["width"] // 2 + 1, 0).perform()
    tooltip = browser.find_element("css selector", ".tooltip")
    assert tooltip.is_displayed() and "token1/root.model.layers.0.self_attn.q_proj/output" in tooltip.text
    ActionChains(browser).click().perform()
    assert [row[header_index(browser, "pair")] for row in shown(browser)] == [
        "token1/root.model.layers.0.self_attn.q_proj/output"
    ]


def test_a_screenshot_is_taken(browser, report, tmp_path):
    open_page(browser, report)
    target = tmp_path / "llmprec_report.png"
    assert browser.save_screenshot(str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 10_000
