"""ATB MultinomialOperation and TopkToppSamplingOperation, seeded like ATB with glibc's ``rand()``.

msit and ATB's own tests seed libc with ``srand(seed)`` and draw ``rand() / 0x7fffffff``;
``glibc_rand`` reproduces glibc's default generator (TYPE_3: an additive feedback generator
``r[i] = r[i-3] + r[i-31] mod 2^32`` over a state seeded by ``16807 * r mod (2^31 - 1)``, the first
310 outputs discarded, each output ``r >> 1``), so no libc is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registry import register_op
from ._common import choice, fail, integer, integers, top_k

MULTINOMIAL = "MultinomialOperation"
TOPK_TOPP = "TopkToppSamplingOperation"

RAND_MAX = 0x7FFFFFFF
_DEGREE, _SEPARATION, _DISCARD = 31, 3, 310


def glibc_rand(seed: int, count: int) -> list[int]:
    """The first ``count`` values of glibc's ``rand()`` after ``srand(seed)``.

    The generator is a recurrence, so it runs as a loop over its ``341 + count`` states.
    """
    word = seed & 0xFFFFFFFF
    word = word - (1 << 32) if word >= 1 << 31 else word  # glibc keeps the seed in an int32_t
    state = [word if word != 0 else 1]
    for _ in range(1, _DEGREE):
        # 16807 * r mod (2^31 - 1) by Schrage's method with C's truncating division
        hi = int(state[-1] / 127773)
        lo = state[-1] - hi * 127773
        word = 16807 * lo - 2836 * hi
        state.append(word + RAND_MAX if word < 0 else word)
    state = [value & 0xFFFFFFFF for value in state]
    state += state[:_SEPARATION]
    outputs = []
    while len(outputs) < count:
        value = (state[-_DEGREE] + state[-_SEPARATION]) & 0xFFFFFFFF
        state.append(value)
        if len(state) > _DEGREE + _SEPARATION + _DISCARD:
            outputs.append(value >> 1)
    return outputs


def uniforms(seed: int, count: int) -> torch.Tensor:
    """``rand() / RAND_MAX`` for the first ``count`` draws after ``srand(seed)``, as float64."""
    return torch.tensor(glibc_rand(seed, count), dtype=torch.float64) / RAND_MAX


def _probabilities(op: str, probs: torch.Tensor) -> torch.Tensor:
    if probs.dim() != 2 or not probs.is_floating_point():
        raise fail(
            op, f"probs must be a 2-D floating tensor [batch, vocab], got {probs.dtype} {list(probs.shape)}"
        )
    return probs


def _first_reaching(cumulative: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Per row and threshold: the first column whose cumulative value reaches the threshold (0 if none)."""
    found = torch.searchsorted(cumulative.contiguous(), thresholds.contiguous())
    return torch.where(found < cumulative.shape[-1], found, 0)


@register_op(MULTINOMIAL, inputs=1)
def multinomial(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``numSamples`` draws per row of ``probs [batch, vocab]``: sample ``z`` is the first index whose
    cumulative probability reaches ``u_z``, the ``z``-th uniform after ``srand(randSeed)`` (shared by
    all rows); int32 ``[batch, numSamples]``."""
    probs = _probabilities(MULTINOMIAL, inputs[0])
    if (probs < 0).any():
        raise fail(MULTINOMIAL, "probs holds negative values")
    samples = integer(params, MULTINOMIAL, "numSamples", 1)
    if not 0 < samples <= min(64, probs.shape[1]):
        raise fail(MULTINOMIAL, f"parameter numSamples={samples} must lie in [1, min(64, {probs.shape[1]})]")
    draws = uniforms(integer(params, MULTINOMIAL, "randSeed", 0), samples)
    cumulative = torch.cumsum(probs, -1)
    return [_first_reaching(cumulative, draws.expand(probs.shape[0], samples)).to(torch.int32)]


# ---------------------------------------------------------------- TopkToppSamplingOperation

_SINGLE, _BATCH_MULTINOMIAL, _BATCH_EXPONENTIAL, _MULTINOMIAL_LOGPROBS, _EXPONENTIAL_LOGPROBS = range(5)
LOGPROB_FILL = -9999.0


def _sampling_type(params: Mapping[str, Any]) -> int:
    # ATB's key; msit validates the misspelled "tokkToppSamplingType", accepted as an alias
    key = "topkToppSamplingType" if "topkToppSamplingType" in params else "tokkToppSamplingType"
    return choice(
        TOPK_TOPP,
        key,
        integer(params, TOPK_TOPP, key, _SINGLE),
        tuple(range(5)),
        "0 single seed top-k/top-p, 1 batch multinomial, 2 batch exponential, 3 and 4 with log-probs",
    )


def _topk_topp_layout(params: Mapping[str, Any]) -> list[str]:
    kind = _sampling_type(params)
    if kind == _SINGLE:
        return ["probs", "topp"]
    names = ["probs", "topk", "topp"]
    return names + ["exponential" if kind in (_BATCH_EXPONENTIAL, _EXPONENTIAL_LOGPROBS) else "random"] * (
        kind != _BATCH_MULTINOMIAL
    )


def _topk_topp_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    logprobs = _sampling_type(params) in (_MULTINOMIAL_LOGPROBS, _EXPONENTIAL_LOGPROBS)
    return [torch.int32, inputs[0].dtype] + [torch.float32] * logprobs


def _column(op: str, what: str, tensor: torch.Tensor, rows: int) -> torch.Tensor:
    values = tensor.reshape(-1)
    if values.numel() == 1:
        values = values.expand(rows)
    if values.numel() != rows:
        raise fail(op, f"{what} has {tensor.numel()} values, expected 1 or {rows} (one per row)")
    return values.reshape(rows, 1)


@register_op(TOPK_TOPP, inputs=(2, 4), output_dtype=_topk_topp_dtypes)
def topk_topp_sampling(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Top-k/top-p sampling of ``probs [batch, vocab]`` → ``[indices int32 [batch, 1], probs [batch, 1]
    (, logprobs float32 [batch, logProbsSize])]`` (see docs/opcheck.md for each type)."""
    names = _topk_topp_layout(params)
    if len(inputs) != len(names):
        raise fail(
            TOPK_TOPP,
            f"expected {len(names)} inputs ([{', '.join(names)}]) for these parameters, got {len(inputs)}",
        )
    probs = _probabilities(TOPK_TOPP, inputs[0])
    rows, vocab = probs.shape
    kind = _sampling_type(params)
    if kind == _SINGLE:
        return _single(params, probs, _column(TOPK_TOPP, "topp", inputs[1], rows))
    order = torch.sort(probs, dim=-1, descending=True, stable=True)
    sorted_probs, sorted_index = order.values, order.indices
    topk = _column(TOPK_TOPP, "topk", inputs[1], rows).to(torch.int64)
    if ((topk < 0) | (topk >= vocab)).any():
        raise fail(TOPK_TOPP, f"topk values must lie in [0, {vocab})")
    topp = _column(TOPK_TOPP, "topp", inputs[2], rows).to(torch.float64)
    # top-k: keep the probabilities at least as large as the one at sorted position topk
    below_k = sorted_probs < sorted_probs.gather(1, topk)
    kept = sorted_probs.masked_fill(below_k, 0.0)
    cumulative = torch.cumsum(kept, -1)
    if kind in (_BATCH_EXPONENTIAL, _EXPONENTIAL_LOGPROBS):
        noise = inputs[3]
        if noise.shape != probs.shape:
            raise fail(
                TOPK_TOPP, f"the exponential input has shape {list(noise.shape)}, expected {[rows, vocab]}"
            )
        above_p = cumulative > topp
        scores = kept.masked_fill(above_p, 0.0) / noise.to(torch.float64)
        choice_index = torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, :1]
        outputs = [sorted_index.gather(1, choice_index).to(torch.int32), sorted_probs.gather(1, choice_index)]
        if kind == _EXPONENTIAL_LOGPROBS:
            masked = above_p | below_k
            masked[:, 0] = False
            last = (~masked).sum(-1, keepdim=True) - 1
            outputs.append(_logprobs(params, sorted_probs, cumulative.gather(1, last.clamp(min=0)), masked))
        return outputs
    inside_p = cumulative < topp
    last = (inside_p.sum(-1, keepdim=True) - 1).clamp(min=0)
    mass = cumulative.gather(1, last)
    if kind == _BATCH_MULTINOMIAL:
        seeds = integers(params, TOPK_TOPP, "randSeeds")
        if len(seeds) != rows:
            raise fail(
                TOPK_TOPP, f"parameter randSeeds has {len(seeds)} seeds, expected {rows} (one per row)"
            )
        draws = torch.stack([uniforms(seed, 1)[0] for seed in seeds]).reshape(rows, 1)
    else:
        draws = _column(TOPK_TOPP, "the random input", inputs[3], rows).to(torch.float64)
    chosen = (cumulative < draws * mass).sum(-1, keepdim=True).clamp(max=vocab - 1)
    outputs = [sorted_index.gather(1, chosen).to(torch.int32), sorted_probs.gather(1, chosen)]
    if kind == _MULTINOMIAL_LOGPROBS:
        inside_p[:, 0] = True
        outputs.append(_logprobs(params, sorted_probs, mass, ~inside_p))
    return outputs


def _single(params: Mapping[str, Any], probs: torch.Tensor, topp: torch.Tensor) -> list[torch.Tensor]:
    """Type 0: keep the ``topk`` largest; threshold ``u_row * (cumulative mass below topp)`` with
    ``u_row`` the row-th uniform after ``srand(randSeed)``; the sample is the count of cumulative
    values at or below the threshold."""
    rows, vocab = probs.shape
    topk = integer(params, TOPK_TOPP, "topk", 100)
    if not 0 < topk <= vocab:
        raise fail(TOPK_TOPP, f"parameter topk={topk} must lie in [1, {vocab}]")
    top_probs, top_index = top_k(probs, topk)
    cumulative = torch.cumsum(top_probs, -1)
    last = ((cumulative < topp.to(torch.float64)).sum(-1, keepdim=True) - 1).clamp(min=0)
    threshold = cumulative.gather(1, last) * uniforms(
        integer(params, TOPK_TOPP, "randSeed", 0), rows
    ).unsqueeze(1)
    chosen = (cumulative <= threshold).sum(-1, keepdim=True).clamp(max=topk - 1)
    return [top_index.gather(1, chosen).to(torch.int32), top_probs.gather(1, chosen)]


def _logprobs(
    params: Mapping[str, Any], sorted_probs: torch.Tensor, mass: torch.Tensor, masked: torch.Tensor
) -> torch.Tensor:
    size = integer(params, TOPK_TOPP, "logProbsSize", 0)
    if not 0 <= size <= sorted_probs.shape[1]:
        raise fail(TOPK_TOPP, f"parameter logProbsSize={size} must lie in [0, {sorted_probs.shape[1]}]")
    values = torch.log(sorted_probs[:, :size] / mass)
    return values.masked_fill(masked[:, :size], LOGPROB_FILL)
