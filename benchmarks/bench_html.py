"""HTML report size and speed for a big run: 50,000 pairs by default.

Builds report rows shaped as the comparison session builds them (every column of
``report.rows.COLUMNS``; a 32-layer Llama-shaped model's tensors over as many tokens as it takes,
realistic dump paths, metrics drawn at random, 3% failing), writes real ``.npy`` files for the
worst pairs (1M elements each, so the histograms read real data), a baseline of every pair, and
times, page cache warm, best of ``--repeat``:

* the CSV report of the same rows (``write_csv``: the floor a report writer is measured against);
* ``write_html_report`` (plots, histograms, the baseline plot, the table of every pair, an extra
  section of 1,000 rows), and the file's size;
* with ``--png``, the PNG plots too.

    python benchmarks/bench_html.py [--pairs 50000] [--repeat 3] [--png]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from measure import best_time

from pytest_llmprec.report.baseline import Baseline
from pytest_llmprec.report.csv_files import write_csv
from pytest_llmprec.report.figures import Figures
from pytest_llmprec.report.histograms import HISTOGRAM_PAIRS
from pytest_llmprec.report.html import ReportContext, Section, write_html_report
from pytest_llmprec.report.rows import COLUMNS

LAYERS = 32
NODES = (
    "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.rotary_emb",
    "self_attn.o_proj", "self_attn", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
    "mlp.act_fn", "mlp.down_proj", "mlp", "",
)  # fmt: skip
LEAVES = ("input_0", "output")


def _tensors() -> list[tuple[str, str]]:
    """(module, leaf) of one token, in execution order."""
    modules = ["root.model.embed_tokens"]
    for layer in range(LAYERS):
        modules += [f"root.model.layers.{layer}" + (f".{node}" if node else "") for node in NODES]
    modules += ["root.model.norm", "root.lm_head"]
    return [(module, leaf) for module in modules for leaf in LEAVES]


def build_rows(count: int, folder: Path, rng: random.Random) -> list[dict]:
    golden_root = folder / "golden" / "msit_dump_20261122_101500" / "torch_tensors" / "npu0_4242"
    my_root = folder / "my" / "msit_dump_20261122_103000" / "torch_tensors" / "npu0_4343"
    per_token = _tensors()
    rows = []
    for order in range(count):
        token, (module, leaf) = divmod(order, len(per_token))[0], per_token[order % len(per_token)]
        deficit = 10 ** rng.uniform(-7, -2.2 if order % 33 else -1.5)
        failed = deficit > 0.005
        red = deficit**0.5 * rng.uniform(0.8, 1.2)
        row = {column: "" for column in COLUMNS}
        row.update(
            token_id=token, data_id=order, node_order=order, pair_key=f"token{token}/{module}/{leaf}",
            golden_data_path=str(golden_root / str(token) / module / f"{leaf}.pth"),
            my_data_path=str(my_root / str(token) / module / f"{leaf}.pth"),
            golden_op_type="Linear", my_op_type="Linear", golden_dtype="torch.float32",
            my_dtype="torch.bfloat16", golden_shape="[1, 128, 4096]", my_shape="[1, 128, 4096]",
            golden_max_value=rng.uniform(1, 50), golden_min_value=-rng.uniform(1, 50),
            golden_mean_value=rng.gauss(0, 0.1), my_max_value=rng.uniform(1, 50),
            my_min_value=-rng.uniform(1, 50), my_mean_value=rng.gauss(0, 0.1),
            cosine_similarity=1 - deficit, max_relative_error=rng.uniform(0, 10),
            mean_relative_error=red / 3, max_absolute_error=red * 10, mean_absolute_error=red / 10,
            kl_divergence=deficit / 2, relative_euclidean_distance=red,
            verdict="failed" if failed else "passed",
            failed_checks=f"cosine_similarity = {1 - deficit:.6g} (needs >= 0.995)" if failed else "",
            check_sources="dtype default (torch.bfloat16)" if failed else "", standard="default",
            sqnr_db=-10 * math.log10(red**2), rel_err_ratio_0_001=rng.random(),
            rel_err_ratio_0_005=rng.random(),
            max_ulp_error=float(rng.randint(1, 4000)), tolerance_pass_rate=rng.random(),
            tolerance="rtol=0.0078125, atol=1e-05", golden_nan_count=0, golden_inf_count=0, my_nan_count=0,
            my_inf_count=0, compared_count=524288, worst_index="(0, 17, 2048)",
            worst_golden_value=rng.gauss(0, 3), worst_my_value=rng.gauss(0, 3),
        )  # fmt: skip
        rows.append(row)
    return rows


def write_worst_tensors(rows: list[dict], folder: Path) -> None:
    """Real files for the pairs the histograms read (the npy suffix makes read_raw take them)."""
    generator = np.random.default_rng(0)
    worst = sorted((r for r in rows if r["verdict"] == "failed"), key=lambda r: r["cosine_similarity"])
    for row in worst[:HISTOGRAM_PAIRS]:
        golden = generator.standard_normal(1 << 20, dtype=np.float32)
        for side, values in (("golden", golden), ("my", golden * np.float32(1.01) + np.float32(1e-3))):
            path = Path(row[f"{side}_data_path"]).with_suffix(".npy")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, values)
            row[f"{side}_data_path"] = str(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--png", action="store_true", help="also time the PNG plots (matplotlib)")
    options = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        rows = build_rows(options.pairs, folder, rng)
        write_worst_tensors(rows, folder)
        values = {
            r["pair_key"]: {"cosine_similarity": r["cosine_similarity"] + 1e-7 * rng.random(),
                            "relative_euclidean_distance": r["relative_euclidean_distance"]}
            for r in rows
        }  # fmt: skip
        baseline = Baseline(folder / "baseline.csv", values, 0.1)
        opcheck = [{"op_id": f"{i}_0", "op_name": "LinearOperation", "precision_result": "PASS",
                    "max_rel_error": rng.random() * 1e-3, "tensor_path": str(folder / "opcheck" / str(i))}
                   for i in range(1000)]  # fmt: skip
        context = ReportContext.from_rows(
            rows, golden=str(folder / "golden"), my=str(folder / "my"), baseline=baseline,
            sections=[Section("opcheck", opcheck)],
        )  # fmt: skip
        report = folder / "report"
        csv_time = best_time(
            lambda: write_csv(report / "llmprec_cmp_report.csv", COLUMNS, rows), options.repeat
        )
        html_path = report / "llmprec_report.html"
        figures_time = best_time(lambda: Figures.build(rows, context), options.repeat)
        html_time = best_time(lambda: write_html_report(html_path, rows, context), options.repeat)
        size = os.path.getsize(html_path)
        csv_size = os.path.getsize(report / "llmprec_cmp_report.csv")
        print(f"{options.pairs} pairs, {len(context.sections[0].rows)} extra-section rows")
        print(f"CSV report:  {csv_time:.3f} s, {csv_size / 1e6:.1f} MB")
        print(f"figures (plots + {HISTOGRAM_PAIRS} histograms of 1M-element pairs): {figures_time:.3f} s")
        print(f"HTML report: {html_time:.3f} s ({html_time / csv_time:.2f}x the CSV), {size / 1e6:.1f} MB")
        if options.png:
            from pytest_llmprec.report.png_plots import write_png_plots

            figures = Figures.build(rows, context)
            png_time = best_time(lambda: write_png_plots(report / "plots", figures, "0"), 1)
            print(f"PNG plots:   {png_time:.3f} s for {len(list((report / 'plots').iterdir()))} files")


if __name__ == "__main__":
    main()
