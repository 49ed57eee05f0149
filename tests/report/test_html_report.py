"""write_html_report: one self-contained file with the header, plots, histograms and every pair."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from report_rows import BROKEN, decoder_rows, embedded, table_rows, text_of

from pytest_llmprec.report import figures as figures_module
from pytest_llmprec.report.baseline import Baseline
from pytest_llmprec.report.html import ReportContext, Section, write_html_report
from pytest_llmprec.report.summary import Counts


@pytest.fixture
def rows(tmp_path):
    return decoder_rows(tmp_path / "dumps")


def write(tmp_path: Path, rows, **context) -> str:
    context.setdefault("golden", str(tmp_path / "dumps" / "golden"))
    context.setdefault("my", str(tmp_path / "dumps" / "my"))
    path = write_html_report(
        tmp_path / "report" / "llmprec_report_1.html", rows, ReportContext.from_rows(rows, **context)
    )
    return path.read_text(encoding="utf-8")


def test_the_page_fetches_nothing(tmp_path, rows):
    page = write(tmp_path, rows)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page)
    # the only absolute URL is the SVG namespace, which a browser never fetches
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}


def test_header_counts_verdict_and_first_divergence(tmp_path, rows):
    page = write(tmp_path, rows, unmatched={"golden": 2, "my": 1}, standard="default (dtype-aware)")
    text = text_of(page)
    assert "24 compared: 22 passed, 2 failed, 0 unreadable" in text
    assert "2 golden, 1 my" in text
    assert re.search(r'id="verdict">FAILED<', page)
    assert str(tmp_path / "dumps" / "golden") in text and "default (dtype-aware)" in text
    layer, node = BROKEN
    key = f"token0/root.model.layers.{layer}.{node}/output"
    block = page[page.index('id="first-divergence"') :]
    block = block[: block.index("</div>")]
    assert key in block and "(Linear)" in block
    first = next(r for r in rows if r["pair_key"] == key)
    assert first["failed_checks"] in text_of(block)
    assert f"cosine {first['cosine_similarity']:.9g}" in text_of(block)  # the accumulated error
    assert "not estimated in this run" in block  # no introduced error without a local verdict
    assert f"./../dumps/golden/0/root.model.layers.{layer}.{node}/output.npy" in block
    assert f"./../dumps/my/0/root.model.layers.{layer}.{node}/output.npy" in block


def test_a_clean_run_says_so(tmp_path):
    rows = [r for r in decoder_rows(tmp_path / "dumps") if r["verdict"] == "passed"]
    page = write(tmp_path, rows)
    assert 'id="verdict">PASSED<' in page and "No divergence" in page
    assert "first-divergence" not in page


def test_unmatched_tensors_fail_the_verdict_only_when_they_fail_the_run(tmp_path):
    rows = [r for r in decoder_rows(tmp_path / "dumps") if r["verdict"] == "passed"]
    assert ReportContext.from_rows(rows, unmatched={"my": 1}).verdict == "passed"
    assert ReportContext.from_rows(rows, unmatched={"my": 1}, fail_on_unmatched=True).verdict == "failed"


def test_the_table_holds_every_pair_with_its_values_and_links(tmp_path, rows):
    page = write(tmp_path, rows)
    table = table_rows(page)
    assert len(table) == len(rows)
    for cells, row in zip(table, rows, strict=True):
        assert cells["pair_key"] == row["pair_key"]
        assert cells["verdict"] == row["verdict"]
        assert cells["data_id"] == row["data_id"] and cells["token_id"] == row["token_id"]
        assert cells["cosine_similarity"] == row["cosine_similarity"]  # full precision
        assert cells["cosine_deficit"] == 1 - row["cosine_similarity"]
        assert cells["relative_euclidean_distance"] == row["relative_euclidean_distance"]
        assert cells["reason"] == (row["failed_checks"] or None)
        assert cells["dtype"] == "float32" and cells["shape"] == "[256]"
        for side in ("golden", "my"):
            relative = Path(row[f"{side}_data_path"]).relative_to(tmp_path / "dumps" / side).as_posix()
            assert cells[f"{side}_data_path"] == (f"./../dumps/{side}/{relative}", relative)
    assert embedded(page, "pairs")["status"] >= 0


def test_links_are_file_urls_when_only_the_root_is_shared(tmp_path, rows):
    for row in rows:
        row["golden_data_path"] = "/opt/llmprec-elsewhere/g" + row["golden_data_path"][len(str(tmp_path)) :]
    page = write(tmp_path, rows)
    href, _ = table_rows(page)[0]["golden_data_path"]
    assert href.startswith("file:///opt/llmprec-elsewhere/g/dumps/golden/")
    href, _ = table_rows(page)[0]["my_data_path"]
    assert (tmp_path / "report" / href).resolve() == Path(rows[0]["my_data_path"])


def test_a_member_of_a_container_file_keeps_its_name_and_links_to_the_file(tmp_path, rows):
    rows[0]["golden_data_path"] = rows[0]["golden_data_path"] + "[layer.weight]"
    page = write(tmp_path, rows)
    href, text = table_rows(page)[0]["golden_data_path"]
    assert text.endswith("output.npy[layer.weight]") and href.endswith("output.npy")


def test_one_plot_per_token_with_failing_marks_layers_and_the_first_divergence(tmp_path, rows):
    page = write(tmp_path, rows)
    plots = re.findall(r'<svg[^>]*class="plot" id="plot-(token-\d+)".*?</svg>', page, re.S)
    assert plots == ["token-0", "token-1"]
    first = re.search(r'<svg[^>]*id="plot-token-0".*?</svg>', page, re.S).group(0)
    second = re.search(r'<svg[^>]*id="plot-token-1".*?</svg>', page, re.S).group(0)
    assert re.findall(r'class="layer-label">(L\d+)<', first) == ["L0", "L1", "L2", "L3"]
    assert 'class="failing"' in first and 'class="failing"' in second
    layer, node = BROKEN
    annotation = re.search(r'<g class="first-divergence" data-position="(\d+)">.*?</g>', first, re.S)
    assert annotation and int(annotation.group(1)) == layer * 3 + 1
    assert f"first divergence: token0/root.model.layers.{layer}.{node}/output" in annotation.group(0)
    assert "first-divergence" not in second
    assert ">1-cos<" in first and ">RED<" in first
    # the script maps plot positions to table rows
    assert embedded(page, "plot-rows") == {
        "plot-token-0": list(range(12)),
        "plot-token-1": list(range(12, 24)),
    }


def test_introduced_error_columns_become_series_columns_and_header_facts(tmp_path, rows):
    for row in rows:
        row["introduced_relative_euclidean_distance"] = row["relative_euclidean_distance"] / 2
        row["introduced_cosine_similarity"] = 1 - (1 - row["cosine_similarity"]) / 3
        row["evidence"] = "propagation"
        row["local_verdict"] = row["verdict"]
    page = write(tmp_path, rows)
    plot = re.search(r'<svg[^>]*id="plot-token-0".*?</svg>', page, re.S).group(0)
    assert ">introduced 1-cos<" in plot and ">introduced RED<" in plot
    table = table_rows(page)
    assert table[4]["introduced_relative_euclidean_distance"] == rows[4]["relative_euclidean_distance"] / 2
    assert table[4]["evidence"] == "propagation" and table[4]["local_verdict"] == rows[4]["verdict"]
    block = text_of(page[page.index('id="first-divergence"') :])
    assert "evidence propagation" in block and "local verdict failed" in block
    assert f"relative_euclidean_distance {rows[4]['relative_euclidean_distance'] / 2:.4g}" in block


def test_many_tokens_fold_all_but_the_first_and_the_divergent_one(tmp_path):
    rows = decoder_rows(tmp_path / "dumps", layers=2, tokens=7, elements=16)
    for row in rows:
        if row["token_id"] != 5:
            row["verdict"], row["failed_checks"] = "passed", ""
    page = write(tmp_path, rows)
    opened, folded = page.split("<details>")
    assert re.findall(r'id="plot-(token-\d)"', opened) == [
        "token-0",
        "token-1",
        "token-2",
        "token-3",
        "token-5",
    ]
    assert re.findall(r'id="plot-(token-\d)"', folded) == ["token-4", "token-6"]
    assert "2 more tokens" in folded


def test_histograms_of_the_worst_pairs(tmp_path, rows):
    page = write(tmp_path, rows)
    section = page[page.index('id="histograms"') : page.index('id="pairs"')]
    keys = re.findall(r"<h3><code>(.*?)</code></h3>", section)
    layer, node = BROKEN
    assert keys[:2] == [f"token{t}/root.model.layers.{layer}.{node}/output" for t in (0, 1)]
    assert len(keys) == 6
    assert "all 256 elements" in section
    assert section.count('class="histogram"') == 12  # absolute and relative per pair


def test_histograms_can_be_turned_off(tmp_path, rows):
    page = write(tmp_path, rows, histogram_pairs=0)
    assert 'id="histograms"' not in page


def test_an_unreadable_pair_is_a_row_and_a_failing_mark(tmp_path):
    rows = decoder_rows(tmp_path / "dumps", unreadable="mlp.down_proj")
    page = write(tmp_path, rows)
    table = table_rows(page)
    errors = [cells for cells in table if cells["verdict"] == "error"]
    assert len(errors) == 8 and all(c["cosine_similarity"] is None for c in errors)
    assert "not a tensor file" in errors[0]["reason"]
    assert "8 unreadable" in text_of(page)


def test_extra_sections_are_tables_of_their_own_rows(tmp_path, rows):
    opcheck = [
        {"op_id": "3_4_0", "op_name": "LinearOperation", "precision_result": "PASS", "max_rel_error": 1e-4,
         "tensor_path": str(tmp_path / "opcheck" / "3_4_0")},
        {"op_id": "3_5_0", "op_name": "SelfAttention", "precision_result": "FAILED", "max_rel_error": math.nan,
         "tensor_path": str(tmp_path / "opcheck" / "3_5_0")},
    ]  # fmt: skip
    overflow = [{"node": "root.model.layers.2.mlp", "kind": "inf", "count": 3}]
    sections = [
        Section("Operator checks", opcheck, note="msit opcheck columns"),
        Section("Overflow", overflow),
    ]
    page = write(tmp_path, rows, sections=sections)
    assert re.findall(r'<section id="(section-\d)"><h2>(.*?)</h2>', page) == [
        ("section-0", "Operator checks"),
        ("section-1", "Overflow"),
    ]
    table = table_rows(page, "section-0")
    assert [c["op_id"] for c in table] == ["3_4_0", "3_5_0"]
    assert [c["max_rel_error"] for c in table] == [1e-4, None]
    assert table[0]["tensor_path"] == ("./../opcheck/3_4_0", "3_4_0")
    data = embedded(page, "section-0")
    assert [c["kind"] for c in data["columns"]] == ["text", "text", "text", "float", "link"]
    assert data["columns"][data["status"]]["key"] == "precision_result"
    assert table_rows(page, "section-1") == [{"node": "root.model.layers.2.mlp", "kind": "inf", "count": 3}]
    assert embedded(page, "section-1")["status"] == -1


def test_a_section_can_choose_and_order_its_columns(tmp_path, rows):
    section = Section(
        "logits", [{"key": "0", "token_id": 1, "passed": True, "extra": "x"}], ["token_id", "key", "passed"]
    )
    page = write(tmp_path, rows, sections=[section])
    assert [c["key"] for c in embedded(page, "section-0")["columns"]] == ["token_id", "key", "passed"]
    assert table_rows(page, "section-0") == [{"token_id": 1, "key": "0", "passed": "True"}]


def test_baseline_plot_shows_this_run_and_the_baseline(tmp_path, rows):
    values = {r["pair_key"]: {"cosine_similarity": 1 - (1 - r["cosine_similarity"]) / 2,
                              "relative_euclidean_distance": r["relative_euclidean_distance"] / 2} for r in rows[:18]}  # fmt: skip
    rows[4]["baseline"] = "regressed"
    page = write(tmp_path, rows, baseline=Baseline(tmp_path / "precision-baseline.csv", values, 0.1))
    plot = re.search(r'<svg[^>]*id="plot-baseline".*?</svg>', page, re.S).group(0)
    for label in ("1-cos this run", "1-cos baseline", "RED this run", "RED baseline"):
        assert f">{label}<" in plot
    assert 'data-count="18"' in plot and 'class="failing"' in plot
    assert "precision-baseline.csv" in text_of(page)
    assert embedded(page, "plot-rows")["plot-baseline"] == list(range(18))


def test_no_baseline_no_baseline_plot(tmp_path, rows):
    assert 'id="plot-baseline"' not in write(tmp_path, rows)


def test_text_from_the_dumps_cannot_break_out_of_the_page(tmp_path, rows):
    evil = "token0/</script><script>alert(1)</script><!--<b>x</b>"
    rows[0]["pair_key"] = evil
    rows[0]["verdict"], rows[0]["failed_checks"] = "failed", "<img src=x onerror=alert(2)>"
    page = write(tmp_path, rows, notes=["<i>note</i>"])
    assert "<script>alert" not in page and "<img" not in page and "<i>note" not in page
    assert table_rows(page)[0]["pair_key"] == evil  # the JSON still holds the exact text
    assert "&lt;i&gt;note&lt;/i&gt;" in page


def test_the_report_is_written_atomically(tmp_path, rows, monkeypatch):
    target = tmp_path / "report" / "llmprec_report_1.html"
    write(tmp_path, rows)
    before = target.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr("pytest_llmprec.report.html.line_plot_svg", broken)
    with pytest.raises(RuntimeError):
        write(tmp_path, rows)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_hand_written_comparisons_are_in_the_table_not_in_the_plots(tmp_path, rows):
    extra = dict(rows[0], pair_key="tests/test_x.py::test_attention::attention", node_order="", token_id="",
                 golden_data_path="", my_data_path="")  # fmt: skip
    page = write(tmp_path, [*rows, extra])
    assert table_rows(page)[-1]["pair_key"] == extra["pair_key"]
    assert table_rows(page)[-1]["golden_data_path"] is None
    assert sum(len(v) for v in embedded(page, "plot-rows").values()) == len(rows)


def test_rows_without_dumps_make_a_report_too(tmp_path):
    page = write_html_report(tmp_path / "r.html", [], ReportContext(counts=Counts())).read_text()
    assert table_rows(page) == [] and 'id="plots"' not in page


def test_figures_are_built_once_when_given(tmp_path, rows, monkeypatch):
    context = ReportContext.from_rows(rows)
    built = figures_module.Figures.build(rows, context)
    monkeypatch.setattr(figures_module.Figures, "build", classmethod(lambda cls, *a: pytest.fail("rebuilt")))
    write_html_report(tmp_path / "r.html", rows, context, built)
