"""Cost of the ATB operator references on transformer-sized inputs, against plain float64 baselines.

For each operator, one process times (best of ``--repeats``):
  reference  pytest_llmprec.opcheck.reference(op, inputs, params) (float64 maths, final cast);
  baseline   the plain float64 torch work of the same size a reference cannot avoid: the widening
             copy plus one element-wise op, one matmul, or one batched attention, as named.
The ratio reference / baseline is the overhead of the reference over that floor.

Run: python benchmarks/bench_atb_references.py [--tokens 512] [--hidden 4096] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch
from measure import best_time

from pytest_llmprec.opcheck import reference

BF16 = torch.bfloat16


def _widened_elementwise(*tensors: torch.Tensor) -> Callable[[], object]:
    return lambda: [t.to(torch.float64) * 1.0 for t in tensors]


def _matmul(x: torch.Tensor, w: torch.Tensor) -> Callable[[], object]:
    return lambda: x.to(torch.float64) @ w.to(torch.float64).T


def _attention(batch: int, heads: int, rows: int, columns: int, size: int) -> Callable[[], object]:
    q = torch.randn(batch, heads, rows, size, dtype=torch.float64)
    k = torch.randn(batch, heads, columns, size, dtype=torch.float64)
    return lambda: torch.softmax(q @ k.transpose(-1, -2), -1) @ k


def _after(first: Callable[[], object], second: Callable[[], object]) -> Callable[[], object]:
    return lambda: (first(), second())


def cases(tokens: int, hidden: int) -> list[tuple[str, str, list, dict, str, Callable[[], object]]]:
    """(op, shapes, inputs, params, baseline name, baseline)."""
    g = torch.Generator().manual_seed(0)

    def randn(*shape, dtype=BF16):
        return torch.randn(shape, generator=g).to(dtype)

    x, gamma, beta = randn(tokens, hidden), randn(hidden), randn(hidden)
    gate_up = randn(tokens, 2 * hidden)
    weight = randn(hidden, hidden)
    x8 = torch.randint(-128, 128, (tokens, hidden), generator=g, dtype=torch.int8)
    w8 = torch.randint(-128, 128, (hidden, hidden), generator=g, dtype=torch.int8)
    scale = torch.from_numpy(np.full(hidden, 1e-3, np.float32).view(np.uint32).astype(np.int64))
    heads, kv_heads, size = hidden // 128, max(hidden // 512, 1), 128
    q, k = randn(tokens, heads * size), randn(tokens, kv_heads * size)
    cos, sin = randn(tokens, size), randn(tokens, size)
    half = tokens // 2
    pa_batch, context, block = 16, 1024, 128
    blocks = pa_batch * context // block
    k_cache = randn(blocks, block, kv_heads, size, dtype=torch.float16)
    tables = torch.arange(blocks, dtype=torch.int32).reshape(pa_batch, -1)
    vocab = 32000
    probs = torch.softmax(torch.randn(64, vocab, generator=g), -1).half()
    table = randn(vocab, hidden)
    ids = torch.randint(0, vocab, (tokens,), generator=g)
    slots = torch.randperm(blocks * block, generator=g)[:tokens].to(torch.int32)
    return [
        (
            "ActivationOperation",
            f"swiglu [{tokens}, {2 * hidden}]",
            [gate_up],
            {"activationType": 6},
            "widen + mul",
            _widened_elementwise(gate_up),
        ),
        (
            "ElewiseOperation",
            f"add [{tokens}, {hidden}]",
            [x, x],
            {"elewiseType": 8},
            "widen + mul",
            _widened_elementwise(x, x),
        ),
        (
            "ElewiseOperation",
            f"dynamic quant [{tokens}, {hidden}]",
            [x],
            {"elewiseType": 19},
            "widen + mul",
            _widened_elementwise(x),
        ),
        (
            "RmsNormOperation",
            f"norm [{tokens}, {hidden}]",
            [x, gamma],
            {"layerType": 1},
            "widen + mul",
            _widened_elementwise(x),
        ),
        (
            "LayerNormOperation",
            f"norm [{tokens}, {hidden}]",
            [x, gamma, beta],
            {"layerType": 1},
            "widen + mul",
            _widened_elementwise(x),
        ),
        (
            "LinearOperation",
            f"bf16 [{tokens}, {hidden}] x [{hidden}, {hidden}]^T",
            [x, weight],
            {},
            "float64 matmul",
            _matmul(x, weight),
        ),
        (
            "LinearOperation",
            f"int8 [{tokens}, {hidden}] x [{hidden}, {hidden}]^T + deqScale",
            [x8, w8, scale],
            {"hasBias": False, "outDataType": 1},
            "float64 matmul",
            _matmul(x8, w8),
        ),
        (
            "RopeOperation",
            f"q [{tokens}, {heads * size}] k [{tokens}, {kv_heads * size}]",
            [q, k, cos, sin, torch.tensor([tokens])],
            {"rotaryCoeff": 2},
            "widen + mul",
            _widened_elementwise(q, k),
        ),
        (
            "SelfAttentionOperation",
            f"PA encoder 2 x {half} tokens, {heads}/{kv_heads} heads",
            [q, k, k, torch.tensor([half, tokens - half])],
            {"headNum": heads, "kvHeadNum": kv_heads, "calcType": 3},
            "batched attention",
            _attention(2, heads, half, half, size),
        ),
        (
            "PagedAttentionOperation",
            f"decode {pa_batch} x ctx {context}, {heads}/{kv_heads} heads",
            [
                randn(pa_batch, heads, size, dtype=torch.float16),
                k_cache,
                k_cache,
                tables,
                torch.full((pa_batch,), context, dtype=torch.int32),
            ],
            {"headNum": heads, "kvHeadNum": kv_heads},
            "widen caches + batched attention",
            _after(_widened_elementwise(k_cache, k_cache), _attention(pa_batch, heads, 1, context, size)),
        ),
        (
            "ReshapeAndCacheOperation",
            f"{tokens} tokens into {blocks} x {block} blocks",
            [k.reshape(tokens, kv_heads, size).half()] * 2 + [k_cache, k_cache, slots],
            {},
            "widen + mul",
            _widened_elementwise(k_cache, k_cache),
        ),
        (
            "GatherOperation",
            f"embedding [{vocab}, {hidden}][{tokens}]",
            [table, ids],
            {"axis": 0, "batchDims": 0},
            "widen + mul of the table",
            _widened_elementwise(table),
        ),
        (
            "TransdataOperation",
            f"ND->NZ [{hidden}, {hidden}]",
            [weight],
            {"transdataType": 2},
            "widen + mul",
            _widened_elementwise(weight),
        ),
        (
            "SoftmaxOperation",
            f"[64, {vocab}]",
            [probs],
            {"axes": [-1]},
            "widen + mul",
            _widened_elementwise(probs),
        ),
        (
            "SortOperation",
            f"top-50 of [64, {vocab}]",
            [probs],
            {"num": [50]},
            "widen + mul",
            _widened_elementwise(probs),
        ),
        (
            "TopkToppSamplingOperation",
            f"type 0 [64, {vocab}]",
            [probs, torch.tensor([[0.9]]).half()],
            {"topk": 50, "randSeed": 1},
            "widen + mul",
            _widened_elementwise(probs),
        ),
        (
            "AllReduceOperation",
            f"4 ranks [{tokens}, {hidden}]",
            [x] * 4,
            {"allReduceType": "sum", "rank": 0, "rankRoot": 0, "rankSize": 4},
            "widen + mul",
            _widened_elementwise(x, x, x, x),
        ),
        (
            "LinearParallelOperation",
            f"2 ranks [{tokens}, {hidden // 2}] x [{hidden}, {hidden // 2}]^T",
            [x[:, : hidden // 2], weight[:, : hidden // 2]] * 2,
            {"backend": "lcoc", "rank": 0, "rankRoot": 0, "rankSize": 2},
            "float64 matmul x 2",
            lambda: [_matmul(x[:, : hidden // 2], weight[:, : hidden // 2])() for _ in range(2)],
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, tokens {args.tokens}, hidden {args.hidden}")
    print(f"{'operator':26} {'case':52} {'reference ms':>13} {'baseline ms':>12} {'ratio':>6}  baseline")
    for op, shapes, inputs, params, baseline_name, baseline in cases(args.tokens, args.hidden):
        reference_s = best_time(lambda: reference(op, inputs, params), args.repeats)  # noqa: B023
        baseline_s = best_time(baseline, args.repeats)
        print(
            f"{op:26} {shapes:52} {reference_s * 1e3:13.1f} {baseline_s * 1e3:12.1f} "
            f"{reference_s / baseline_s:6.2f}  {baseline_name}"
        )


if __name__ == "__main__":
    main()
