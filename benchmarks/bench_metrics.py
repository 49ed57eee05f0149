"""Speed and memory of compare_tensors against a read floor and a straightforward implementation.

For 32M-element golden/my pairs in float16, bfloat16 and float32 (CPU), in one process:
  floor     one reduction over each tensor (torch.sum), the least any comparison must do;
  compare   pytest_llmprec.compare_tensors (all metrics, one pass);
  naive     the seven standard metrics written straightforwardly: both tensors converted to
            float64, then one pass per metric with full-size temporaries.
Times are the best of several runs. Peak extra memory is the rise of the peak resident set
during the call (reset through /proc/self/clear_refs), as a share of the pair's size.
The table is printed twice: with every thread torch and the kernel use by default, and with one
thread each (floor and compare then compete for nothing, so that ratio is the steadier one on a
shared machine whose second core comes and goes).

Run: python benchmarks/bench_metrics.py [--elements N] [--repeats 5] [--instruction-set NAME]
"""

from __future__ import annotations

import argparse

import torch
from measure import best_time, peak_extra_bytes

from pytest_llmprec import compare_tensors
from pytest_llmprec.compare import native


def naive_metrics(golden: torch.Tensor, my: torch.Tensor) -> dict[str, float]:
    g, m = golden.reshape(-1).double(), my.reshape(-1).double()
    eps = 2.0**-23
    mask = g.abs() > eps
    rel = torch.where(mask, (m / torch.where(mask, g, 1.0) - 1).abs(), 0.0)
    diff = (m - g).abs()
    return {
        "cosine_similarity": torch.nn.functional.cosine_similarity(g, m, dim=0).item(),
        "max_relative_error": rel.max().item(),
        "mean_relative_error": rel.mean().item(),
        "max_absolute_error": diff.max().item(),
        "mean_absolute_error": diff.mean().item(),
        "kl_divergence": torch.nn.functional.kl_div(
            torch.log_softmax(m, 0), torch.log_softmax(g, 0), reduction="sum", log_target=True
        ).item(),
        "relative_euclidean_distance": (torch.linalg.norm(m - g) / torch.linalg.norm(g)).item(),
    }


def table(n: int, repeats: int, with_naive: bool) -> None:
    header = f"{'dtype':<10}{'floor ms':>10}{'compare ms':>12}{'cmp/floor':>11}"
    if with_naive:
        header += f"{'naive ms':>10}{'naive/cmp':>11}{'extra mem':>11}{'naive mem':>11}"
    print(header)
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        golden = torch.randn(n, generator=generator).to(dtype)
        my = (golden.float() + torch.randn(n, generator=generator) * 1e-2).to(dtype)
        pair_bytes = golden.nbytes + my.nbytes
        compare_tensors(golden[:1000], my[:1000])  # warm up the thread pool
        floor = best_time(lambda g=golden, m=my: (g.sum(), m.sum()), repeats + 2)
        compare = best_time(lambda g=golden, m=my: compare_tensors(g, m), repeats)
        line = f"{str(dtype).replace('torch.', ''):<10}{floor * 1e3:>10.1f}{compare * 1e3:>12.1f}"
        line += f"{compare / floor:>10.1f}x"
        if with_naive:
            naive = best_time(lambda g=golden, m=my: naive_metrics(g, m), 2)
            extra = peak_extra_bytes(lambda g=golden, m=my: compare_tensors(g, m))
            naive_extra = peak_extra_bytes(lambda g=golden, m=my: naive_metrics(g, m))
            line += f"{naive * 1e3:>10.0f}{naive / compare:>10.1f}x{extra / pair_bytes:>10.2%}"
            line += f"{naive_extra / pair_bytes:>10.0%}"
        print(line)
        del golden, my


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=32 * 1024 * 1024)
    parser.add_argument("--repeats", type=int, default=5, help="timings are the best of this many runs")
    parser.add_argument(
        "--instruction-set", choices=native.instruction_sets(), help="kernel variant (default: the best one)"
    )
    args = parser.parse_args()
    if args.instruction_set:
        native.use_instruction_set(args.instruction_set)
    n = args.elements
    threads = torch.get_num_threads()
    kernel = args.instruction_set or native.instruction_sets()[0]
    print(f"{n:,} elements per tensor, torch {torch.__version__}, kernel compiled for {kernel}")
    print(f"\n{threads} threads (the defaults)")
    table(n, args.repeats, with_naive=True)
    torch.set_num_threads(1)
    native.set_threads(1)
    print("\none thread each")
    table(n, args.repeats, with_naive=False)


if __name__ == "__main__":
    main()
