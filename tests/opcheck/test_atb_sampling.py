"""glibc rand(), MultinomialOperation and TopkToppSamplingOperation against explicit per-row loops."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.opcheck import reference
from pytest_llmprec.opcheck.atb.sampling import glibc_rand, uniforms

from .atb_support import SEEDS, assert_fails

# glibc 2.x, srand(1) (also the sequence after srand(0)): the first ten rand() values
GLIBC_SEED_1 = [
    1804289383,
    846930886,
    1681692777,
    1714636915,
    1957747793,
    424238335,
    719885386,
    1649760492,
    596516649,
    1189641421,
]
# computed with gcc + glibc: srand(42), srand(2147483648) (the seed is held as a negative int32)
GLIBC_SEED_42 = [71876166, 708592740, 1483128881, 907283241, 442951012]
GLIBC_SEED_2_31 = [1336741213, 1210407648, 1447044896, 337392383, 82502902]

C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int count = atoi(argv[1]);
    for (int i = 2; i < argc; i++) {
        srand((unsigned) strtoul(argv[i], NULL, 10));
        for (int j = 0; j < count; j++) printf("%d ", rand());
        printf("\n");
    }
    return 0;
}
"""


def test_glibc_rand_known_sequences():
    assert glibc_rand(1, 10) == GLIBC_SEED_1
    assert glibc_rand(0, 10) == GLIBC_SEED_1
    assert glibc_rand(42, 5) == GLIBC_SEED_42
    assert glibc_rand(2**31, 5) == GLIBC_SEED_2_31
    # ATB's own multinomial test lists rand()/RAND_MAX after srand(0) to 6 digits
    assert np.allclose(uniforms(0, 4).numpy(), [0.840188, 0.394383, 0.783099, 0.79844], atol=1e-6)


@pytest.fixture(scope="module")
def libc_rand(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed; the known sequences above still check glibc_rand")
    folder = tmp_path_factory.mktemp("rand")
    source = folder / "rand.c"
    source.write_text(C_PROGRAM)
    binary = folder / "rand"
    subprocess.run(["gcc", "-O0", "-o", str(binary), str(source)], check=True, capture_output=True)
    probe = subprocess.run([str(binary), "1", "1"], capture_output=True, text=True, check=True)
    if probe.stdout.split() != [str(GLIBC_SEED_1[0])]:
        pytest.skip("the C library here is not glibc")

    def run(seeds, count):
        result = subprocess.run(
            [str(binary), str(count), *map(str, seeds)], capture_output=True, text=True, check=True
        )
        return [list(map(int, line.split())) for line in result.stdout.splitlines()]

    return run


def test_glibc_rand_matches_the_c_library(libc_rand):
    seeds = [0, 1, 2, 7, 42, 12345, 2**31 - 1, 2**31, 2**31 + 5, 2**32 - 1, *range(100, 140)]
    seeds += list(np.random.default_rng(0).integers(0, 2**32, 60))
    for seed, expected in zip(seeds, libc_rand(seeds, 40), strict=True):
        assert glibc_rand(int(seed), 40) == expected, seed


# ---------------------------------------------------------------- Multinomial


def _probs(seed, rows, vocab):
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(rows, vocab, generator=generator, dtype=torch.float64) * 2, -1)


@given(
    seed=SEEDS,
    rand_seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 4),
    vocab=st.integers(2, 20),
    dtype=st.sampled_from([torch.float16, torch.float32]),
    data=st.data(),
)
def test_multinomial_first_index_reaching_each_draw(seed, rand_seed, rows, vocab, dtype, data):
    probs = _probs(seed, rows, vocab).to(dtype)
    samples = data.draw(st.integers(1, vocab))
    (out,) = reference("MultinomialOperation", [probs], {"numSamples": samples, "randSeed": rand_seed})
    assert out.dtype == torch.int32 and out.shape == (rows, samples)
    draws = [v / 0x7FFFFFFF for v in glibc_rand(rand_seed, samples)]
    for row in range(rows):
        values = probs[row].to(torch.float64).tolist()
        for z, u in enumerate(draws):
            running, chosen = 0.0, 0
            for i, p in enumerate(values):
                running += p
                if running >= u:
                    chosen = i
                    break
            assert out[row, z] == chosen


# ---------------------------------------------------------------- TopkToppSampling


def _sorted(row):
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))
    return [row[i] for i in order], order


@given(
    seed=SEEDS,
    rand_seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 4),
    vocab=st.integers(2, 30),
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32]),
    data=st.data(),
)
def test_single_seed_topk_topp(seed, rand_seed, rows, vocab, dtype, data):
    probs = _probs(seed, rows, vocab).to(dtype)
    topk = data.draw(st.integers(1, vocab))
    topp = torch.tensor([[data.draw(st.floats(0.05, 1.0))]], dtype=dtype)
    params = {"topk": topk, "randSeed": rand_seed, "topkToppSamplingType": 0}
    index, prob = reference("TopkToppSamplingOperation", [probs, topp], params)
    assert index.dtype == torch.int32 and prob.dtype == dtype and index.shape == (rows, 1)
    draws = [v / 0x7FFFFFFF for v in glibc_rand(rand_seed, rows)]
    for row in range(rows):
        values, order = _sorted(probs[row].to(torch.float64).tolist())
        values, order = values[:topk], order[:topk]
        cumulative = list(np.cumsum(values))
        inside = sum(c < float(topp) for c in cumulative)
        threshold = cumulative[max(inside - 1, 0)] * draws[row]
        chosen = min(sum(c <= threshold for c in cumulative), topk - 1)
        assert index[row, 0] == order[chosen]
        assert prob[row, 0] == probs[row, order[chosen]]


def _batch_expected(probs, topk, topp, draws, kind, noise=None, logprobs_size=0):
    rows = probs.shape[0]
    indices, sampled, logprobs = [], [], []
    for row in range(rows):
        values, order = _sorted(probs[row].tolist())
        boundary = values[topk[row]]
        kept = [v if v >= boundary else 0.0 for v in values]
        cumulative = list(np.cumsum(kept))
        if kind in (2, 4):
            scores = [
                0.0 if c > topp[row] else k / e for k, c, e in zip(kept, cumulative, noise[row], strict=True)
            ]
            chosen = max(range(len(scores)), key=lambda i: (scores[i], -i))
            masked = [c > topp[row] or v < boundary for c, v in zip(cumulative, values, strict=True)]
            masked[0] = False
            mass = cumulative[max(sum(not m for m in masked) - 1, 0)]
        else:
            inside = [c < topp[row] for c in cumulative]
            mass = cumulative[max(sum(inside) - 1, 0)]
            chosen = min(sum(c < draws[row] * mass for c in cumulative), len(values) - 1)
            masked = [not flag for flag in inside]
            masked[0] = False
        indices.append(order[chosen])
        sampled.append(values[chosen])
        logprobs.append([-9999.0 if masked[i] else math.log(values[i] / mass) for i in range(logprobs_size)])
    return indices, sampled, logprobs


@given(
    seed=SEEDS,
    rows=st.integers(1, 4),
    vocab=st.integers(2, 20),
    kind=st.sampled_from([1, 2, 3, 4]),
    data=st.data(),
)
def test_batch_topk_topp_types(seed, rows, vocab, kind, data):
    probs = _probs(seed, rows, vocab).to(torch.float32)
    topk = [data.draw(st.integers(0, vocab - 1)) for _ in range(rows)]
    topp = [data.draw(st.floats(0.05, 1.0)) for _ in range(rows)]
    topk_t = torch.tensor(topk, dtype=torch.int32).reshape(-1, 1)
    topp_t = torch.tensor(topp, dtype=torch.float32).reshape(-1, 1)
    params = {"topkToppSamplingType": kind, "logProbsSize": min(vocab, 3)}
    inputs = [probs, topk_t, topp_t]
    noise = draws = None
    if kind == 1:
        seeds = [data.draw(st.integers(0, 2**32 - 1)) for _ in range(rows)]
        params["randSeeds"] = seeds
        draws = [glibc_rand(s, 1)[0] / 0x7FFFFFFF for s in seeds]
    elif kind == 3:
        draws_t = torch.rand(rows, 1, generator=torch.Generator().manual_seed(seed))
        inputs.append(draws_t)
        draws = draws_t.reshape(-1).tolist()
    else:
        noise_t = (
            torch.empty(rows, vocab).exponential_(1, generator=torch.Generator().manual_seed(seed)) + 1e-3
        )
        inputs.append(noise_t)
        noise = noise_t.tolist()
    outputs = reference("TopkToppSamplingOperation", inputs, params)
    wide_outputs = reference("TopkToppSamplingOperation", inputs, params, dtype=torch.float64)
    expected = _batch_expected(
        probs.to(torch.float64),
        topk,
        [float(t) for t in topp_t.reshape(-1)],
        draws,
        kind,
        noise,
        params["logProbsSize"],
    )
    assert outputs[0].reshape(-1).tolist() == expected[0]
    assert np.allclose(wide_outputs[1].reshape(-1).numpy(), expected[1], rtol=1e-12)
    assert [t.dtype for t in outputs] == [torch.int32, torch.float32] + [torch.float32] * (kind in (3, 4))
    if kind in (3, 4):
        assert np.allclose(wide_outputs[2].numpy(), expected[2], rtol=1e-9)


def test_sampling_errors():
    probs = torch.softmax(torch.randn(2, 5), -1)
    assert_fails("MultinomialOperation", [probs], {"numSamples": 6}, "numSamples=6")
    assert_fails("MultinomialOperation", [probs.reshape(-1)], {"numSamples": 1}, "2-D floating")
    assert_fails("MultinomialOperation", [-probs], {"numSamples": 1}, "negative")
    topp = torch.tensor([[0.9]])
    assert_fails("TopkToppSamplingOperation", [probs, topp], {"topk": 0}, "topk=0")
    assert_fails(
        "TopkToppSamplingOperation", [probs, topp], {"topkToppSamplingType": 7}, "topkToppSamplingType=7"
    )
    assert_fails("TopkToppSamplingOperation", [probs, topp], {"tokkToppSamplingType": 1}, "expected 3 inputs")
    topk = torch.tensor([[1], [1]])
    assert_fails(
        "TopkToppSamplingOperation",
        [probs, topk, torch.full((2, 1), 0.5)],
        {"topkToppSamplingType": 1},
        "randSeeds",
    )
    assert_fails(
        "TopkToppSamplingOperation",
        [probs, topk, torch.full((2, 1), 0.5)],
        {"topkToppSamplingType": 1, "randSeeds": [1]},
        "2 (one per row)",
    )
    assert_fails(
        "TopkToppSamplingOperation",
        [probs, torch.tensor([[9], [1]]), torch.full((2, 1), 0.5)],
        {"topkToppSamplingType": 1, "randSeeds": [1, 2]},
        "topk values",
    )
    assert_fails(
        "TopkToppSamplingOperation",
        [probs, topk, torch.full((2, 1), 0.5), torch.ones(2, 4)],
        {"topkToppSamplingType": 2},
        "exponential input has shape",
    )
