"""RowStore: rows held, then spooled; the same report order, and a digest whose summary is exact."""

from __future__ import annotations

import random

import torch
from torch_dumps import read_report, write_torch_dump

from pytest_llmprec.dumps.torch_dump import WEIGHTS_TOKEN
from pytest_llmprec.pipeline import CompareSettings, Comparison, row_store
from pytest_llmprec.pipeline.row_store import RowStore
from pytest_llmprec.report.rows import row_sort_key
from pytest_llmprec.report.summary import summary_lines


def random_rows(seed: int, count: int) -> list[dict]:
    """Rows of dump pairs over layers and tokens, weight pairs and hand-written comparisons, with
    every verdict, in shuffled order."""
    generator = random.Random(seed)
    rows = []
    for order in range(count):
        kind = generator.random()
        token = WEIGHTS_TOKEN if kind < 0.1 else generator.randrange(3)
        verdict = generator.choices(["passed", "failed", "error"], [8, 2, 1])[0]
        row = {
            "pair_key": f"token{token}/root.model.layers.{generator.randrange(6)}.mlp/output_{order}",
            "node_order": order if kind < 0.95 else "",
            "token_id": token,
            "verdict": verdict,
            "failed_checks": f"check {order}" if verdict == "failed" else "",
            "cmp_fail_reason": "unreadable" if verdict == "error" else "",
        }
        if verdict != "error":
            row["cosine_similarity"] = round(1 - generator.random() ** 4 / 10, 3)  # ties happen
            row["relative_euclidean_distance"] = generator.random()
        rows.append(row)
    generator.shuffle(rows)
    return rows


def test_spooled_rows_come_back_in_report_order_numbered():
    for seed in range(5):
        rows = random_rows(seed, 300)
        held, spooled = RowStore(), RowStore(held=17)
        held.extend(dict(row) for row in rows)
        spooled.extend(dict(row) for row in rows)
        assert spooled.spooled and not held.spooled
        assert len(spooled) == len(held) == 300
        expected = sorted((dict(row) for row in rows), key=row_sort_key)
        for index, row in enumerate(expected):
            row["data_id"] = index
        assert list(held.ordered()) == expected
        assert list(spooled.ordered()) == expected
        spooled.close()


def test_the_digest_gives_the_summary_of_all_rows():
    for seed in range(20):
        rows = random_rows(seed, 400)
        store = RowStore(held=10)
        store.extend(rows)
        digest = store.digest
        unmatched = {"golden": 2, "my": 1}
        full = summary_lines(sorted(rows, key=row_sort_key), unmatched, ["a note"], ["r.csv"])
        short = summary_lines(
            digest.rows(), unmatched, ["a note"], ["r.csv"], digest.counts(unmatched), digest.weights_failing
        )
        assert short == full
        assert len(digest.rows()) < len(rows)
        store.close()


def test_a_spooled_comparison_writes_the_report_of_a_held_one(tmp_path, monkeypatch):
    values = torch.arange(1.0, 9.0)
    tokens = {t: {f"root.layers.{n}": {"output": values + n + t} for n in range(4)} for t in range(3)}
    broken = {t: {k: {"output": v["output"] * (1.5 if k == "root.layers.2" else 1)} for k, v in m.items()}
              for t, m in tokens.items()}  # fmt: skip
    golden = write_torch_dump(tmp_path / "g", tokens)
    my = write_torch_dump(tmp_path / "m", broken)
    runs = {}
    for name, held in (("held", 1000), ("spooled", 3)):
        monkeypatch.setattr(row_store, "HELD_ROWS", held)
        report_dir = tmp_path / name
        comparison = Comparison(
            CompareSettings(golden=golden, my=my, report_dir=report_dir, baseline=tmp_path / f"{name}.csv",
                            update_baseline=True)
        )  # fmt: skip
        for _ in comparison.evaluations():
            pass
        assert comparison.rows.spooled == (name == "spooled")
        paths = comparison.write_reports()
        summary = [line.replace(f"{name}.csv", "baseline.csv") for line in comparison.summary()]
        runs[name] = (read_report(report_dir), (tmp_path / f"{name}.csv").read_text(), summary)
        html = next(path for path in paths if path.suffix == ".html").read_text()
        assert ("this report shows" in html) == (name == "spooled")
        comparison.close()
    assert runs["held"] == runs["spooled"]
