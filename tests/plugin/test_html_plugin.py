"""The visual reports of `pytest --llm-golden --llm-my`: HTML, PNG plots, pytest-html, sparkline, read_report."""

from __future__ import annotations

import html
import importlib.util
import re

import pytest
import torch
from torch_dumps import write_torch_dump

from pytest_llmprec.report import read_report

LAYERS = 3


def decoder_dump(broken_layer: int | None = None) -> dict:
    """One token of a three-layer decoder; ``broken_layer``'s MLP output is perturbed."""
    generator, noise = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    modules = {}
    for layer in range(LAYERS):
        for node in ("self_attn", "mlp"):
            tensor = torch.randn(4, 8, generator=generator)
            if layer == broken_layer and node == "mlp":
                tensor = tensor + torch.randn(4, 8, generator=noise)
            modules[f"root.model.layers.{layer}.{node}"] = {"output": tensor}
    return {0: modules}


@pytest.fixture
def dumps(tmp_path):
    golden = write_torch_dump(tmp_path / "golden", decoder_dump())
    my = write_torch_dump(tmp_path / "my", decoder_dump(broken_layer=1))
    return golden, my


def run(pytester, golden, my, *args):
    return pytester.runpytest(f"--llm-golden={golden}", f"--llm-my={my}", "-p", "no:cacheprovider", *args)


def html_reports(pytester):
    return sorted((pytester.path / "llmprec-report").glob("llmprec_report_*.html"))


def test_the_html_report_is_written_beside_the_csvs_by_default(pytester, dumps):
    result = run(pytester, *dumps)
    assert result.ret == 1
    (report,) = html_reports(pytester)
    (csv,) = (pytester.path / "llmprec-report").glob("llmprec_cmp_report_*.csv")
    assert (
        report.name.removeprefix("llmprec_report_")
        == csv.name.removeprefix("llmprec_cmp_report_")[:-4] + ".html"
    )
    result.stdout.fnmatch_lines([f"report: *{report.name}"])
    page = report.read_text()
    assert 'id="verdict">FAILED<' in page
    assert "token0/root.model.layers.1.mlp/output" in page[page.index('id="first-divergence"') :][:600]
    assert str(dumps[0]) in page and str(dumps[1]) in page
    assert "<dd>6 compared: 5 passed, 1 failed, 0 unreadable</dd>" in page
    assert 'class="first-divergence"' in page and re.findall(r'class="layer-label">(L\d)<', page) == [
        "L0",
        "L1",
        "L2",
    ]


def test_no_llm_html_and_the_ini_key(pytester, dumps):
    run(pytester, *dumps, "--no-llm-html")
    assert html_reports(pytester) == []
    pytester.makeini("[pytest]\nllm_html = false\n")
    run(pytester, *dumps)
    assert html_reports(pytester) == []
    run(pytester, *dumps, "--llm-html")  # the command line wins over the ini file
    assert len(html_reports(pytester)) == 1


def test_the_standard_given_on_the_command_line_is_in_the_header(pytester, dumps):
    run(pytester, *dumps, "--llm-standard=strict", "--llm-max-red=0.5")
    page = html.unescape(html_reports(pytester)[0].read_text())
    assert "strict; for every pair: relative_euclidean_distance <= 0.5" in page


def test_the_baseline_plot_appears_with_a_baseline(pytester, dumps, tmp_path):
    baseline = tmp_path / "baseline.csv"
    run(pytester, *dumps, f"--llm-baseline={baseline}", "--llm-update-baseline")
    assert 'id="plot-baseline"' not in html_reports(pytester)[-1].read_text()  # written, not compared with
    for report in html_reports(pytester):
        report.unlink()
    run(pytester, *dumps, f"--llm-baseline={baseline}")
    page = html_reports(pytester)[0].read_text()
    assert 'id="plot-baseline"' in page and ">1-cos baseline<" in page


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib (plots extra) missing")
def test_llm_plots_writes_png_files(pytester, dumps):
    result = run(pytester, *dumps, "--llm-plots=plots")
    names = sorted(p.name for p in (pytester.path / "plots").iterdir())
    assert [re.sub(r"_\d{14}\.png$", "", n) for n in names] == [
        "llmprec_histogram-0", "llmprec_histogram-1", "llmprec_histogram-2", "llmprec_histogram-3",
        "llmprec_histogram-4", "llmprec_histogram-5", "llmprec_token-0",
    ]  # fmt: skip
    result.stdout.fnmatch_lines(["report: *plots/llmprec_token-0_*.png"])


def test_llm_plots_without_matplotlib_is_a_usage_error(pytester, dumps, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    result = run(pytester, *dumps, "--llm-plots=plots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--llm-plots=*plots: PNG plots need matplotlib: pip install 'pytest-llmprec[[]plots]'*"]
    )


def test_the_summary_has_a_sparkline_of_the_worst_layer_errors(pytester, dumps):
    result = run(pytester, *dumps)
    result.stdout.fnmatch_lines(
        [
            "worst 1-cos per layer, layers 0-2 (log scale *; x: a failing pair):",
            "  *  layers 0-2",
            "  .x.",
            "  worst layer 1: 1-cos * at token0/root.model.layers.1.mlp/output",
        ]
    )


def test_read_report_reads_what_the_run_wrote(pytester, dumps):
    run(pytester, *dumps)
    folder = pytester.path / "llmprec-report"
    (report,) = folder.glob("llmprec_cmp_report_*.csv")
    frame = read_report(report)
    expected = {
        f"token0/root.model.layers.{i}.{node}/output" for i in range(LAYERS) for node in ("self_attn", "mlp")
    }
    assert set(frame["pair_key"]) == expected and frame["node_order"].is_monotonic_increasing
    assert frame["golden_shape"][0] == (4, 8) and frame["node_order"].dtype == "Int64"
    assert frame["verdict"].tolist().count("failed") == 1
    (unmatched,) = folder.glob("llmprec_unmatched_*.csv")
    assert read_report(unmatched).attrs["report_kind"] == "unmatched"


needs_pytest_html = pytest.mark.skipif(
    importlib.util.find_spec("pytest_html") is None, reason="pytest-html (test extra) is not installed"
)


def pytest_html_rows(path) -> list[str]:
    """The results-table rows pytest-html stores (JSON in an attribute of its page), as HTML text."""
    page = path.read_text()
    blob = html.unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1))
    return re.findall(r'"resultsTableRow": \[(.*?)\]', blob) or re.findall(
        r'"resultsTableRow":\[(.*?)\]', blob
    )


@needs_pytest_html
def test_pytest_html_rows_carry_metrics_and_link_to_our_report(pytester, dumps):
    result = run(pytester, *dumps, "--html=html/pytest.html")
    assert result.ret == 1
    page = (pytester.path / "html" / "pytest.html").read_text()
    for header in ("llm verdict", "cosine", "RED", "max abs"):
        assert f">{header}</th>" in page
    rows = pytest_html_rows(pytester.path / "html" / "pytest.html")
    (ours,) = html_reports(pytester)
    failed = next(r for r in rows if "layers.1.mlp" in r)
    assert "col-llmVerdict" in failed and ">failed<" in failed.replace("\\", "")
    frame = read_report(next((pytester.path / "llmprec-report").glob("llmprec_cmp_report_*.csv")))
    cosine = frame.set_index("pair_key")["cosine_similarity"]["token0/root.model.layers.1.mlp/output"]
    assert f">{cosine:.9g}<" in failed.replace("\\", "")
    blob = html.unescape(page)
    link = f"../llmprec-report/{ours.name}#filter=token0%2Froot.model.layers.1.mlp%2Foutput"
    assert link in blob
    assert f'pytest-llmprec: <a href="../llmprec-report/{ours.name}">{ours.name}</a>' in blob


@needs_pytest_html
def test_pytest_html_without_our_report_has_empty_cells_and_no_links(pytester, dumps):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    run(pytester, *dumps, "--html=pytest.html", "--no-llm-html")
    page = html.unescape((pytester.path / "pytest.html").read_text())
    assert "llmprec report" not in page and "pytest-llmprec:" not in page
    plain = next(r for r in pytest_html_rows(pytester.path / "pytest.html") if "test_plain" in r)
    assert 'col-llmCosine\\"></td>' in plain or 'col-llmCosine"></td>' in plain


KEPT_ROWS_PROBE = """
def pytest_terminal_summary(terminalreporter):
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            rows = getattr(report, "llmprec_rows", None)
            if report.when == "call" and "layers" in report.nodeid:
                print("KEPT", report.nodeid, sorted(rows[0]) if rows else None)
"""


@needs_pytest_html
@pytest.mark.parametrize("with_html", [False, True])
def test_reports_keep_only_what_the_pytest_html_table_shows(pytester, dumps, with_html):
    # pytest's terminal reporter holds every report to the end: a whole row on each is ~4 KB a pair
    pytester.makeconftest(KEPT_ROWS_PROBE)
    result = run(pytester, *dumps, "-s", *(["--html=pytest.html"] if with_html else []))
    kept = [line for line in result.stdout.lines if line.startswith("KEPT ")]
    assert len(kept) == 2 * LAYERS
    shown = "['cmp_fail_reason', 'cosine_similarity', 'failed_checks', 'max_absolute_error', "
    shown += "'pair_key', 'relative_euclidean_distance', 'verdict']"
    for line in kept:
        assert line.endswith(shown if with_html else " None"), line
    if with_html:
        failed = next(r for r in pytest_html_rows(pytester.path / "pytest.html") if "layers.1.mlp" in r)
        assert "title=" in failed  # the failed checks, from the kept columns


@needs_pytest_html
@pytest.mark.parametrize("with_html", [False, True])
def test_the_pytest_html_hooks_run_only_when_pytest_html_writes_a_report(pytester, dumps, with_html):
    # with pytest-html merely installed they cost about 0.15 ms a test and add nothing
    pytester.makeconftest(
        "def pytest_sessionfinish(session):\n"
        "    print('EXTRAS', session.config.pluginmanager.has_plugin('llmprec-html-extras'))\n"
    )
    result = run(pytester, *dumps, "-s", *(["--html=pytest.html"] if with_html else []))
    result.stdout.fnmatch_lines([f"*EXTRAS {with_html}"])
