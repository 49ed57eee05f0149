"""KvCacheOperation and ReshapeAndCacheOperation against explicit per-token writes."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.opcheck import reference, spec

from .atb_support import FLOATS, SEEDS, assert_fails, randn

KV = "KvCacheOperation"
RAC = "ReshapeAndCacheOperation"


def test_in_place_indices_follow_msit():
    assert spec(KV).inplace_outputs == (2,)
    assert spec(RAC).inplace_outputs == (2, 3)


@given(seed=SEEDS, dtype=st.sampled_from([torch.float16, torch.int8]), data=st.data())
def test_kv_cache_writes_each_batch_after_its_past(seed, dtype, data):
    batch = data.draw(st.integers(1, 3))
    lengths = data.draw(st.lists(st.integers(0, 3), min_size=batch, max_size=batch))
    pasts = data.draw(st.lists(st.integers(0, 3), min_size=batch, max_size=batch))
    layers, max_seq, hidden = 2, 6, 4
    cache = randn(seed, (layers, batch, max_seq, hidden), torch.float32, scale=20).to(dtype)
    new = randn(seed + 1, (sum(lengths), hidden), torch.float32, scale=20).to(dtype)
    offsets = torch.tensor([p + n for p, n in zip(pasts, lengths, strict=True)], dtype=torch.int32)
    layer = data.draw(st.integers(0, layers - 1))
    inputs = [new, torch.tensor([layer]), cache, offsets, torch.tensor(lengths, dtype=torch.int32)]
    (out,) = reference(KV, inputs, {})
    expected, row = cache.clone(), 0
    for b in range(batch):
        for j in range(lengths[b]):
            expected[layer, b, pasts[b] + j] = new[row]
            row += 1
    assert out.dtype == dtype
    assert torch.equal(out, expected)


@given(seed=SEEDS, dtype=FLOATS, data=st.data())
def test_reshape_and_cache_scatters_by_slot(seed, dtype, data):
    tokens, heads, size, blocks, block_size = data.draw(st.integers(1, 6)), 2, 4, 4, 3
    slots = data.draw(
        st.lists(st.integers(-1, blocks * block_size - 1), min_size=tokens, max_size=tokens, unique=True)
    )
    key, value = randn(seed, (tokens, heads, size), dtype), randn(seed + 1, (tokens, heads, size), dtype)
    k_cache, v_cache = (
        randn(seed + 2, (blocks, block_size, heads, size), dtype),
        randn(seed + 3, (blocks, block_size, heads, size), dtype),
    )
    outputs = reference(RAC, [key, value, k_cache, v_cache, torch.tensor(slots, dtype=torch.int32)], {})
    expected = [k_cache.clone(), v_cache.clone()]
    for i, slot in enumerate(slots):
        if slot >= 0:
            expected[0][slot // block_size, slot % block_size] = key[i]
            expected[1][slot // block_size, slot % block_size] = value[i]
    assert all(torch.equal(a, b) for a, b in zip(outputs, expected, strict=True))
    (only_key,) = reference(RAC, [key, k_cache, torch.tensor(slots)], {"kvCacheCfg": 1})
    assert torch.equal(only_key, expected[0])


@given(seed=SEEDS, c0=st.sampled_from([16, 32]), data=st.data())
def test_reshape_and_cache_nz_cache_holds_c0_wide_chunks(seed, c0, data):
    tokens, heads, size, blocks, block_size = data.draw(st.integers(1, 4)), 2, 16, 3, 4
    slots = data.draw(
        st.lists(st.integers(0, blocks * block_size - 1), min_size=tokens, max_size=tokens, unique=True)
    )
    dtype = torch.int8 if c0 == 32 else torch.float16
    key = randn(seed, (tokens, heads, size), torch.float32, scale=30).to(dtype)
    cache = torch.zeros(blocks, heads * size // c0, block_size, c0, dtype=dtype)
    (out, _) = reference(RAC, [key, key, cache, cache, torch.tensor(slots)], {"kvCacheCfg": 2})
    for i, slot in enumerate(slots):
        flat = key[i].reshape(-1)
        for chunk in range(heads * size // c0):
            assert torch.equal(
                out[slot // block_size, chunk, slot % block_size], flat[chunk * c0 : (chunk + 1) * c0]
            )


def test_reshape_and_cache_kv_head_compression_copies_each_window():
    heads, size, block_size = 2, 4, 4
    seq_len = torch.tensor([5, 3])
    key = torch.arange(8 * heads * size, dtype=torch.float32).reshape(8, heads, size)
    wins = torch.tensor([2, 3, 1, 3])  # (batch 0, head 0), (0, 1), (1, 0), (1, 1)
    slots = torch.tensor([0, 4, 8, 12])
    cache = torch.zeros(5, block_size, 1, size)
    k_out, v_out = reference(RAC, [key, key, cache, cache, slots, wins, seq_len], {"compressType": 1})
    expected = cache.clone()
    ends = [5, 8]
    for entry, (slot, win) in enumerate(zip(slots.tolist(), wins.tolist(), strict=True)):
        batch, head = divmod(entry, heads)
        for j in range(win):
            target = slot + j
            expected[target // block_size, target % block_size, 0] = key[ends[batch] - win + j, head]
    assert torch.equal(k_out, expected) and torch.equal(v_out, expected)


def test_cache_errors():
    cache = torch.zeros(2, 3, 4, 8)
    new = torch.zeros(3, 8)
    assert_fails(
        KV,
        [new, torch.tensor([2]), cache, torch.tensor([3, 0, 0]), torch.tensor([3, 0, 0])],
        {},
        "layerId 2 is out of range",
    )
    assert_fails(
        KV,
        [new, torch.tensor([0]), cache, torch.tensor([3, 0]), torch.tensor([3, 0, 0])],
        {},
        "tokenOffset has 2 values",
    )
    assert_fails(
        KV,
        [new, torch.tensor([0]), cache, torch.tensor([5, 0, 0]), torch.tensor([3, 0, 0])],
        {},
        "tokenOffset must lie",
    )
    assert_fails(
        KV,
        [torch.zeros(2, 8), torch.tensor([0]), cache, torch.tensor([3, 0, 0]), torch.tensor([3, 0, 0])],
        {},
        "newKv has shape",
    )
    key, kc = torch.zeros(2, 2, 4), torch.zeros(2, 3, 2, 4)
    assert_fails(RAC, [key, key, kc, kc, torch.tensor([0, 9])], {}, "beyond the cache capacity")
    assert_fails(RAC, [key, key, kc, kc, torch.tensor([0])], {}, "slotMapping has 1 values")
    assert_fails(
        RAC, [key, key, torch.zeros(2, 3, 2, 5), kc, torch.tensor([0, 1])], {}, "does not hold tokens"
    )
    assert_fails(RAC, [key, key, kc, kc, torch.tensor([0.0, 1.0])], {}, "integer tensor")
    assert_fails(RAC, [key, key, kc, kc, torch.tensor([0, 1])], {"compressType": 2}, "compressType=2")
    assert_fails(RAC, [key, kc, torch.tensor([0, 1])], {}, "expected 5 inputs")
