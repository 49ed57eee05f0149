"""Element error histograms from the two tensor files of the worst pairs, in bounded time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pytest_llmprec.formats import save_atb_bin
from pytest_llmprec.report import histograms
from pytest_llmprec.report.histograms import error_histograms, pair_histogram, worst_rows


def reference(golden: np.ndarray, my: np.ndarray, bins: int = histograms.BINS):
    """Log10 histograms of |my - golden| and |my - golden| / |golden|, in float64, written here."""
    golden, my = golden.astype(np.float64).ravel(), my.astype(np.float64).ravel()
    keep = np.isfinite(golden) & np.isfinite(my)
    golden, my = golden[keep], my[keep]
    results = []
    for values in (np.abs(my - golden), np.abs(my - golden)[golden != 0] / np.abs(golden[golden != 0])):
        positive = values[values > 0]
        low, high = math.floor(np.log10(positive).min()), math.ceil(np.log10(positive).max())
        counts, _ = np.histogram(np.log10(positive), bins=bins, range=(low, max(high, low + 1)))
        results.append((list(counts), int(values.size - positive.size)))
    return results


def save_pair(folder, golden, my, suffix=".npy"):
    paths = []
    for side, tensor in (("golden", golden), ("my", my)):
        path = folder / f"{side}{suffix}"
        if suffix == ".npy":
            np.save(path, tensor.numpy() if isinstance(tensor, torch.Tensor) else tensor)
        elif suffix == ".pth":
            torch.save(tensor, path)
        else:
            save_atb_bin(tensor, path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("suffix", [".npy", ".pth", ".bin"])
def test_counts_match_a_float64_reference(tmp_path, suffix):
    generator = torch.Generator().manual_seed(1)
    golden = torch.randn(4, 1000, generator=generator)
    golden[0, :10] = 0.0
    my = golden + torch.randn(4, 1000, generator=generator) * 1e-3
    my[1, :5] = golden[1, :5]  # exact elements
    my[2, 0] = math.inf
    histogram = pair_histogram("k", *save_pair(tmp_path, golden, my, suffix))
    (absolute, zeros), (relative, relative_zeros) = reference(golden.numpy(), my.numpy())
    assert histogram.note == ""
    assert list(histogram.absolute.counts) == absolute and histogram.absolute.zeros == zeros
    assert list(histogram.relative.counts) == relative and histogram.relative.zeros == relative_zeros
    assert histogram.elements == histogram.sampled == 4000 and histogram.nonfinite == 1


def test_bfloat16_files_are_read_as_their_values(tmp_path):
    golden = torch.linspace(-3, 3, 999, dtype=torch.float32)
    my = golden.to(torch.bfloat16)
    histogram = pair_histogram("k", *save_pair(tmp_path, golden, my, ".pth"))
    (absolute, zeros), _ = reference(golden.numpy(), my.float().numpy())
    assert list(histogram.absolute.counts) == absolute and histogram.absolute.zeros == zeros


def test_files_read_raw_does_not_take_go_through_load_tensor(tmp_path):
    golden = torch.arange(1.0, 9.0)
    for side, tensor in (("golden", golden), ("my", golden * 1.5)):
        torch.save({"a": tensor, "b": tensor}, tmp_path / f"{side}.pt")
    histogram = pair_histogram("k", f"{tmp_path / 'golden.pt'}[a]", f"{tmp_path / 'my.pt'}[a]")
    assert histogram.note == "" and sum(histogram.relative.counts) == 8


def test_big_tensors_are_sampled(tmp_path, monkeypatch):
    monkeypatch.setattr(histograms, "MAX_ELEMENTS", 1024)
    golden = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    histogram = pair_histogram("k", *save_pair(tmp_path, golden, golden * np.float32(1.001)))
    assert histogram.elements == 100_000 and histogram.sampled == 1024
    assert sum(histogram.absolute.counts) == 1024


def test_unreadable_pairs_get_a_note_naming_the_file(tmp_path):
    golden, my = save_pair(tmp_path, np.ones(4, np.float32), np.ones(5, np.float32))
    assert pair_histogram("k", golden, my).note == "element counts differ"
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    note = pair_histogram("k", golden, str(tmp_path / "bad.npy")).note
    assert note.startswith("cannot read the tensors") and "bad.npy" in note
    assert "missing.npy: no such file" in pair_histogram("k", golden, str(tmp_path / "missing.npy")).note


def rows_with(values):
    return [{"pair_key": key, "cosine_similarity": cos, "relative_euclidean_distance": red, "verdict": verdict,
             "golden_data_path": "g", "my_data_path": "m"} for key, cos, red, verdict in values]  # fmt: skip


def test_the_worst_pairs_are_failing_first_then_by_cosine_and_red():
    rows = rows_with([("a", 0.99, 0.1, "passed"), ("b", 0.999, 0.01, "failed"), ("c", 0.99, 0.2, "passed"),
                      ("d", math.nan, 0.0, "failed"), ("e", 0.5, 0.3, "passed")])  # fmt: skip
    rows.append({"pair_key": "f", "cosine_similarity": 0.1, "verdict": "failed", "golden_data_path": ""})
    assert [r["pair_key"] for r in worst_rows(rows, 4)] == ["b", "d", "e", "c"]


def test_pairs_past_the_time_budget_are_skipped_with_a_note(tmp_path):
    paths = save_pair(tmp_path, np.ones(4, np.float32), np.ones(4, np.float32) * 2)
    rows = rows_with([("a", 0.9, 0.1, "failed"), ("b", 0.95, 0.1, "failed")])
    for row in rows:
        row["golden_data_path"], row["my_data_path"] = paths
    done = error_histograms(rows, count=2, seconds=-1)
    assert [h.note for h in done] == ["skipped: the -1 s budget was spent"] * 2
    done = error_histograms(rows, count=2)
    assert [h.note for h in done] == ["", ""] and done[0].absolute.counts[0] == 4
