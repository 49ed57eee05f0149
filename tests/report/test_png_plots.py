"""--llm-plots: the figures as PNG files through matplotlib."""

from __future__ import annotations

import struct
import sys

import pytest
from report_rows import decoder_rows

from pytest_llmprec.errors import LlmprecError
from pytest_llmprec.report.baseline import Baseline
from pytest_llmprec.report.figures import Figures
from pytest_llmprec.report.html import ReportContext
from pytest_llmprec.report.png_plots import write_png_plots

pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_every_figure_becomes_a_png(tmp_path):
    rows = decoder_rows(tmp_path / "dumps", layers=2, tokens=2, elements=64)
    values = {r["pair_key"]: {"cosine_similarity": r["cosine_similarity"]} for r in rows}
    context = ReportContext.from_rows(
        rows, baseline=Baseline(tmp_path / "b.csv", values, 0.1), histogram_pairs=2
    )
    written = write_png_plots(tmp_path / "plots", Figures.build(rows, context), "20261122000000")
    assert [p.name for p in written] == [
        "llmprec_token-0_20261122000000.png", "llmprec_token-1_20261122000000.png",
        "llmprec_baseline_20261122000000.png", "llmprec_histogram-0_20261122000000.png",
        "llmprec_histogram-1_20261122000000.png",
    ]  # fmt: skip
    width, height = png_size(written[0])
    assert width > 2 * height > 0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in written)


def test_without_matplotlib_the_error_says_what_to_install(tmp_path, monkeypatch):
    rows = decoder_rows(tmp_path / "dumps", layers=1, tokens=1, elements=8)
    figures = Figures.build(rows, ReportContext.from_rows(rows, histogram_pairs=0))
    import matplotlib.backends.backend_agg  # noqa: F401  (loaded first, so the real modules come back)

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(LlmprecError, match=r"pip install 'pytest-llmprec\[plots\]'"):
        write_png_plots(tmp_path / "plots", figures, "1")
    assert not (tmp_path / "plots").exists() or not list((tmp_path / "plots").iterdir())
