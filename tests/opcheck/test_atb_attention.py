"""SelfAttention, PagedAttention and Rope against per-head numpy attention and per-element rotations."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmprec.opcheck import reference

from .atb_support import FLOATS, SEEDS, assert_close, assert_fails, np64, randint, randn, wide

SA = "SelfAttentionOperation"
PA = "PagedAttentionOperation"
ROPE = "RopeOperation"
HEADS = st.sampled_from([(2, 2), (4, 2), (4, 1)])
HEAD_SIZE = st.sampled_from([4, 8])


def np_attention(q, k, v, scale, bias=None, clamp=None):
    """q [s, H, d], k [t, Hk, d], v [t, Hk, dv] → [s, H, dv], head h reading kv head h // (H / Hk)."""
    s, heads, _ = q.shape
    group = heads // k.shape[1]
    out = np.zeros((s, heads, v.shape[2]))
    for h in range(heads):
        scores = q[:, h] @ k[:, h // group].T * scale
        if clamp is not None:
            scores = np.clip(scores, *clamp)
        if bias is not None:
            scores = scores + np.broadcast_to(bias, (heads, *scores.shape))[h]
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        out[:, h] = weights / weights.sum(-1, keepdims=True) @ v[:, h // group]
    return out


def _causal(rows, columns):
    mask = np.zeros((rows, columns))
    for i in range(rows):
        mask[i, columns - rows + i + 1 :] = -np.inf
    return mask


@settings(max_examples=30)
@given(
    seed=SEEDS,
    heads=HEADS,
    d=HEAD_SIZE,
    dtype=FLOATS,
    lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    masked=st.booleans(),
    q_scale=st.floats(0.5, 2),
    qk_scale=st.floats(0.1, 1),
)
def test_self_attention_paged_encoder(seed, heads, d, dtype, lengths, masked, q_scale, qk_scale):
    h, hk = heads
    tokens = sum(lengths)
    q, k, v = (randn(seed + i, (tokens, n, d), dtype) for i, n in enumerate((h, hk, hk)))
    seq = torch.tensor(lengths, dtype=torch.int32)
    size = max(lengths)
    mask = torch.triu(torch.full((size, size), -10000.0), 1).to(dtype)
    params = {
        "headNum": h,
        "kvHeadNum": hk,
        "calcType": 3,
        "qScale": q_scale,
        "qkScale": qk_scale,
        "maskType": int(masked),
        "kernelType": 1,
    }
    inputs = [q, k, v, mask, seq] if masked else [q, k, v, seq]
    (out,) = wide(SA, inputs, params)
    expected, start = [], 0
    for n in lengths:
        rows = slice(start, start + n)
        bias = np64(mask)[:n, :n] if masked else None
        expected.append(np_attention(np64(q)[rows] * q_scale, np64(k)[rows], np64(v)[rows], qk_scale, bias))
        start += n
    assert_close(out, np.concatenate(expected), rtol=1e-9, atol=1e-9)
    assert reference(SA, inputs, params)[0].dtype == dtype


@settings(max_examples=30)
@given(
    seed=SEEDS,
    heads=HEADS,
    d=HEAD_SIZE,
    lengths=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    pasts=st.lists(st.integers(0, 3), min_size=3, max_size=3),
    clamp=st.booleans(),
)
def test_self_attention_writes_new_tokens_after_the_cached_ones(seed, heads, d, lengths, pasts, clamp):
    h, hk = heads
    batch, tokens, layers, max_seq = len(lengths), sum(lengths), 2, 8
    pasts = pasts[:batch]
    q = randn(seed, (tokens, h * d), torch.float16)
    k, v = randn(seed + 1, (tokens, hk * d), torch.float16), randn(seed + 2, (tokens, hk * d), torch.float16)
    cache_k = randn(seed + 3, (layers, batch, max_seq, hk * d), torch.float16)
    cache_v = randn(seed + 4, (layers, batch, max_seq, hk * d), torch.float16)
    offsets = torch.tensor([p + n for p, n in zip(pasts, lengths, strict=True)], dtype=torch.int32)
    seq = torch.tensor(lengths, dtype=torch.int32)
    layer = torch.tensor([1], dtype=torch.int32)
    params = {"headNum": h, "kvHeadNum": hk, "qkScale": 0.5, "calcType": 1}
    if clamp:
        params.update(clampType=1, clampMin=-0.5, clampMax=0.5)
    (out,) = wide(SA, [q, k, v, cache_k, cache_v, offsets, seq, layer], params)
    start = 0
    for b, (past, n) in enumerate(zip(pasts, lengths, strict=True)):
        keys = np.concatenate([np64(cache_k)[1, b, :past], np64(k)[start : start + n]]).reshape(-1, hk, d)
        values = np.concatenate([np64(cache_v)[1, b, :past], np64(v)[start : start + n]]).reshape(-1, hk, d)
        expected = np_attention(
            np64(q)[start : start + n].reshape(n, h, d),
            keys,
            values,
            0.5,
            clamp=(-0.5, 0.5) if clamp else None,
        )
        assert_close(out[start : start + n], expected.reshape(n, h * d), rtol=1e-9, atol=1e-9)
        start += n


@settings(max_examples=30)
@given(
    seed=SEEDS, heads=HEADS, d=HEAD_SIZE, dtype=FLOATS, kv=st.lists(st.integers(1, 6), min_size=1, max_size=3)
)
def test_self_attention_bypass_decoder_with_a_binary_or_additive_mask(seed, heads, d, dtype, kv):
    h, hk = heads
    batch, max_seq = len(kv), 6
    q = randn(seed, (batch, 1, h, d), dtype)
    cache_k = randn(seed + 1, (1, batch, max_seq, hk * d), dtype)
    cache_v = randn(seed + 2, (1, batch, max_seq, hk * d), dtype)
    hidden = randint(seed, (batch, 1, max_seq), 0, 2).bool()
    hidden[..., 0] = False  # every query keeps at least one key
    # bf16/fp32 kernels read a 0/1 mask (1 = masked); fp16 ones read an additive mask
    mask = hidden.to(dtype) if dtype != torch.float16 else hidden.to(dtype) * -10000
    params = {"headNum": h, "kvHeadNum": hk, "qkScale": 0.7, "kvcacheCfg": 1, "calcType": 2, "maskType": 1}
    inputs = [
        q,
        cache_k,
        cache_v,
        mask,
        torch.tensor(kv),
        torch.ones(batch, dtype=torch.int32),
        torch.tensor([0]),
    ]
    (out,) = wide(SA, inputs, params)
    assert out.shape == (batch, 1, h, d)
    for b, length in enumerate(kv):
        keep = ~hidden[b, 0, :length].numpy()
        keys = np64(cache_k)[0, b, :length][keep].reshape(-1, hk, d)
        values = np64(cache_v)[0, b, :length][keep].reshape(-1, hk, d)
        expected = np_attention(np64(q)[b].reshape(1, h, d), keys, values, 0.7)
        assert_close(out[b], expected, rtol=1e-7, atol=1e-7)


@given(seed=SEEDS, n=st.integers(1, 6))
def test_self_attention_compressed_mask_is_causal(seed, n):
    q, k, v = (randn(seed + i, (n, 2, 4), torch.float16) for i in range(3))
    mask = torch.triu(torch.full((2, 2), -10000.0), 1).half()  # smaller than the scores: compressed
    params = {"headNum": 2, "calcType": 3, "maskType": 3}
    (out,) = wide(SA, [q, k, v, mask, torch.tensor([n])], params)
    assert_close(out, np_attention(np64(q), np64(k), np64(v), 1.0, _causal(n, n)), rtol=1e-9, atol=1e-9)


def test_self_attention_batch_run_status_skips_batches():
    q = torch.randn(2, 8)
    caches = torch.randn(1, 2, 4, 8)
    inputs = [
        q,
        caches,
        caches,
        torch.tensor([3, 3]),
        torch.tensor([1, 1]),
        torch.tensor([0]),
        torch.tensor([1, 0]),
    ]
    params = {"headNum": 2, "kvcacheCfg": 1, "batchRunStatusEnable": True}
    (out,) = wide(SA, inputs, params)
    assert out[1].abs().sum() == 0 and out[0].abs().sum() > 0


def test_self_attention_errors():
    q = torch.randn(3, 8)
    assert_fails(SA, [q, q, q, torch.tensor([3])], {"calcType": 3}, "headNum")
    assert_fails(
        SA, [q, q, q, torch.tensor([3])], {"headNum": 3, "calcType": 3}, "does not split into 3 heads"
    )
    assert_fails(SA, [q, q, q, torch.tensor([3])], {"headNum": 2, "kvHeadNum": 3, "calcType": 3}, "multiple")
    assert_fails(SA, [q, q, q, torch.tensor([3])], {"headNum": 2, "calcType": 4}, "calcType=4")
    assert_fails(SA, [q, q, q, torch.tensor([3])], {"headNum": 2, "calcType": 3, "maskType": 7}, "maskType=7")
    assert_fails(
        SA, [q, q, q, torch.tensor([3])], {"headNum": 2, "calcType": 3, "quantType": 2}, "quantType=2"
    )
    assert_fails(
        SA,
        [q, q, q, torch.tensor([3])],
        {"headNum": 2, "calcType": 3, "maskType": 1},
        "expected 5 inputs",
        "[q, k, v, mask, seqLen]",
    )
    small = torch.zeros(2, 2)
    assert_fails(
        SA,
        [q, q, q, small, torch.tensor([3])],
        {"headNum": 2, "calcType": 3, "maskType": 1},
        "smaller than the 3 x 3 scores",
    )
    caches = torch.randn(1, 1, 2, 8)
    assert_fails(
        SA,
        [q, caches, caches, torch.tensor([3]), torch.tensor([3]), torch.tensor([0])],
        {"headNum": 2, "kvcacheCfg": 1},
        "tokenOffset exceeds",
    )


def _paged(seed, contexts, block_size, hk, d, dtype):
    """Contiguous per-sequence keys/values and the block caches and tables holding them."""
    blocks = sum(-(-n // block_size) for n in contexts) + 2
    keys = [randn(seed + 10 + i, (n, hk, d), dtype) for i, n in enumerate(contexts)]
    values = [randn(seed + 20 + i, (n, hk, d), dtype) for i, n in enumerate(contexts)]
    k_cache = randn(seed, (blocks, block_size, hk, d), dtype)
    v_cache = randn(seed + 1, (blocks, block_size, hk, d), dtype)
    free = torch.randperm(blocks, generator=torch.Generator().manual_seed(seed)).tolist()
    width = max(-(-n // block_size) for n in contexts)
    tables = torch.full((len(contexts), width), -1, dtype=torch.int32)
    for b, n in enumerate(contexts):
        for j in range(-(-n // block_size)):
            block = free.pop()
            tables[b, j] = block
            piece = slice(j * block_size, min(n, (j + 1) * block_size))
            count = piece.stop - piece.start
            k_cache[block, :count], v_cache[block, :count] = keys[b][piece], values[b][piece]
    return keys, values, k_cache, v_cache, tables


@settings(max_examples=30)
@given(
    seed=SEEDS,
    heads=HEADS,
    d=HEAD_SIZE,
    dtype=FLOATS,
    contexts=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    block_size=st.sampled_from([2, 4]),
    alibi=st.booleans(),
)
def test_paged_attention_reads_the_block_tables(seed, heads, d, dtype, contexts, block_size, alibi):
    h, hk = heads
    keys, values, k_cache, v_cache, tables = _paged(seed, contexts, block_size, hk, d, dtype)
    q = randn(seed + 2, (len(contexts), h, d), dtype)
    context_lens = torch.tensor(contexts, dtype=torch.int32)
    params = {"headNum": h, "kvHeadNum": hk, "qkScale": 0.4}
    inputs = [q, k_cache, v_cache, tables, context_lens]
    mask = randn(seed + 3, (len(contexts), h, 1, max(contexts)), dtype)
    if alibi:
        params["maskType"] = 2
        inputs.append(mask)
    (out,) = wide(PA, inputs, params)
    for b, n in enumerate(contexts):
        bias = np64(mask)[b, :, :, :n] if alibi else None
        expected = np_attention(np64(q)[b : b + 1], np64(keys[b]), np64(values[b]), 0.4, bias)
        assert_close(out[b : b + 1], expected, rtol=1e-9, atol=1e-9)
    assert reference(PA, inputs, params)[0].dtype == dtype


@settings(max_examples=30)
@given(
    seed=SEEDS,
    heads=HEADS,
    d=HEAD_SIZE,
    contexts=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    offsets=st.booleans(),
    encoded=st.booleans(),
)
def test_paged_attention_dequantises_int8_caches(seed, heads, d, contexts, offsets, encoded):
    h, hk = heads
    _keys, _values, k_cache, v_cache, tables = _paged(seed, contexts, 4, hk, d, torch.float32)
    k_int = (k_cache * 40).round().clamp(-128, 127).to(torch.int8)
    v_int = (v_cache * 40).round().clamp(-128, 127).to(torch.int8)
    rng = np.random.default_rng(seed)
    k_scale, v_scale = (
        rng.uniform(0.01, 0.05, hk * d).astype(np.float32),
        rng.uniform(0.01, 0.05, hk * d).astype(np.float32),
    )
    k_off, v_off = rng.integers(-5, 5, hk * d).astype(np.int32), rng.integers(-5, 5, hk * d).astype(np.int32)

    def scale_tensor(values):
        return (
            torch.from_numpy(values.view(np.uint32).astype(np.int64)) if encoded else torch.from_numpy(values)
        )

    q = randn(seed + 2, (len(contexts), h, d), torch.float16)
    params = {"headNum": h, "kvHeadNum": hk, "quantType": 1, "hasQuantOffset": offsets, "qkScale": 0.3}
    quant = [scale_tensor(k_scale)] + [torch.from_numpy(k_off)] * offsets
    quant += [scale_tensor(v_scale)] + [torch.from_numpy(v_off)] * offsets
    inputs = [q, k_int, v_int, tables, torch.tensor(contexts), *quant]
    (out,) = wide(PA, inputs, params)

    def dequant(cache, scale, offset):
        flat = cache.numpy().astype(np.float64).reshape(*cache.shape[:2], -1) + (offset if offsets else 0)
        return (flat * scale.astype(np.float64)).reshape(cache.shape)

    k_float, v_float = dequant(k_int, k_scale, k_off), dequant(v_int, v_scale, v_off)
    for b, n in enumerate(contexts):
        rows = [(int(tables[b, j // 4]), j % 4) for j in range(n)]
        ks = np.stack([k_float[blk, off] for blk, off in rows])
        vs = np.stack([v_float[blk, off] for blk, off in rows])
        assert_close(out[b : b + 1], np_attention(np64(q)[b : b + 1], ks, vs, 0.3), rtol=1e-9, atol=1e-9)
    assert reference(PA, inputs, params)[0].dtype == torch.float16


@given(seed=SEEDS, contexts=st.lists(st.integers(2, 8), min_size=1, max_size=3), q_len=st.integers(1, 2))
def test_paged_attention_spec_decoding_with_query_lengths(seed, contexts, q_len):
    keys, values, k_cache, v_cache, tables = _paged(seed, contexts, 4, 1, 4, torch.float32)
    tokens = q_len * len(contexts)
    q = randn(seed + 2, (tokens, 2, 4), torch.float32)
    mask = randn(seed + 3, (tokens, max(contexts)), torch.float32)
    params = {"headNum": 2, "kvHeadNum": 1, "calcType": 1, "maskType": 3}
    inputs = [q, k_cache, v_cache, tables, torch.tensor(contexts), mask, torch.full((len(contexts),), q_len)]
    (out,) = wide(PA, inputs, params)
    for b, n in enumerate(contexts):
        rows = slice(b * q_len, (b + 1) * q_len)
        expected = np_attention(
            np64(q)[rows], np64(keys[b]), np64(values[b]), 1.0, np64(mask)[rows, :n][None]
        )
        assert_close(out[rows], expected, rtol=1e-9, atol=1e-9)


def test_paged_attention_nz_cache_matches_nd():
    _keys, _values, k_cache, v_cache, tables = _paged(0, [5, 3], 4, 2, 16, torch.float16)
    q = torch.randn(2, 2, 16).half()
    context = torch.tensor([5, 3])
    params = {"headNum": 2, "kvHeadNum": 2}
    nd = wide(PA, [q, k_cache, v_cache, tables, context], params)[0]

    def to_nz(cache):  # [blocks, bs, heads, d] -> [blocks, heads*d/16, bs, 16]
        blocks, bs = cache.shape[:2]
        return cache.reshape(blocks, bs, -1, 16).permute(0, 2, 1, 3).contiguous()

    nz = wide(PA, [q, to_nz(k_cache), to_nz(v_cache), tables, context], params)[0]
    assert torch.equal(nd, nz)


def test_paged_attention_kv_head_compression_and_mla():
    h, hk, d = 4, 2, 8
    contexts = [3, 5, 2, 4]  # (batch, kv head) pairs of 2 tokens x 2 kv heads
    keys, values, k_cache, v_cache, tables = _paged(1, contexts, 4, 1, d, torch.float32)
    q = torch.randn(2, h, d, dtype=torch.float64)
    params = {"headNum": h, "kvHeadNum": hk, "compressType": 1}
    (out,) = wide(PA, [q, k_cache, v_cache, tables, torch.tensor(contexts)], params)
    for seq, _n in enumerate(contexts):
        b, head = divmod(seq, hk)
        heads = slice(head * 2, head * 2 + 2)
        expected = np_attention(q[b : b + 1, heads].numpy(), np64(keys[seq]), np64(values[seq]), 1.0)
        assert_close(out[b : b + 1, heads], expected, rtol=1e-9, atol=1e-9)
    mla = wide(
        PA, [q[:, :1], k_cache, tables[:2], torch.tensor(contexts[:2])], {"headNum": 1, "mlaVHeadSize": 4}
    )[0]
    expected = np_attention(q[:1, :1].numpy(), np64(keys[0]), np64(keys[0])[..., :4], 1.0)
    assert mla.shape == (2, 1, 4)
    assert_close(mla[:1], expected, rtol=1e-9, atol=1e-9)


def test_paged_attention_errors():
    _, _, k_cache, v_cache, tables = _paged(0, [3], 4, 1, 8, torch.float32)
    q = torch.randn(1, 2, 8)
    base = [q, k_cache, v_cache, tables, torch.tensor([3])]
    assert_fails(PA, base, {}, "headNum")
    assert_fails(PA, base, {"headNum": 2, "quantType": 2}, "quantType=2")
    assert_fails(PA, base, {"headNum": 2, "maskType": 1}, "expected 6 inputs", "mask")
    assert_fails(
        PA, [q, k_cache, v_cache, tables, torch.tensor([30])], {"headNum": 2, "kvHeadNum": 1}, "cannot hold"
    )
    bad = tables.clone()
    bad[0, 0] = 99
    assert_fails(
        PA, [q, k_cache, v_cache, bad, torch.tensor([3])], {"headNum": 2, "kvHeadNum": 1}, "block table"
    )
    assert_fails(
        PA,
        [q, torch.randn(3, 4, 3, 8), v_cache, tables, torch.tensor([3])],
        {"headNum": 2, "kvHeadNum": 1},
        "neither ND nor NZ",
    )
    assert_fails(
        PA,
        [q, k_cache, v_cache, tables, torch.tensor([3, 3])],
        {"headNum": 2, "kvHeadNum": 1},
        "must describe",
    )
    assert_fails(
        PA,
        [*base, torch.ones(3), torch.ones(8)],
        {"headNum": 2, "kvHeadNum": 1, "quantType": 1},
        "kDescale has 3 values",
    )


# ---------------------------------------------------------------- Rope


def np_rope(x, cos, sin, coeff):
    """Per element: head dims cut in ``coeff`` chunks; chunk pairs (2i, 2i+1) rotate."""
    tokens, rot = cos.shape
    heads = x.reshape(tokens, -1, rot)
    stride = rot // coeff
    out = np.empty_like(heads)
    for t, h, i in np.ndindex(heads.shape):
        within = i % (2 * stride)
        rotated = -heads[t, h, i + stride] if within < stride else heads[t, h, i - stride]
        out[t, h, i] = heads[t, h, i] * cos[t, i] + rotated * sin[t, i]
    return out.reshape(x.shape)


@given(
    seed=SEEDS,
    dtype=FLOATS,
    tokens=st.integers(1, 4),
    rot=st.sampled_from([4, 8, 16]),
    heads=st.sampled_from([(1, 1), (2, 1), (3, 3)]),
    coeff_kind=st.sampled_from(["2", "4", "rot"]),
)
def test_rope_rotary_coefficients(seed, dtype, tokens, rot, heads, coeff_kind):
    coeff = rot if coeff_kind == "rot" else int(coeff_kind)
    q, k = randn(seed, (tokens, heads[0] * rot), dtype), randn(seed + 1, (tokens, heads[1] * rot), dtype)
    cos, sin = randn(seed + 2, (tokens, rot), dtype), randn(seed + 3, (tokens, rot), dtype)
    params = {"rotaryCoeff": coeff}
    inputs = [q, k, cos, sin, torch.tensor([tokens], dtype=torch.int32)]
    out_q, out_k = wide(ROPE, inputs, params)
    assert_close(out_q, np_rope(np64(q), np64(cos), np64(sin), coeff), rtol=1e-12)
    assert_close(out_k, np_rope(np64(k), np64(cos), np64(sin), coeff), rtol=1e-12)
    assert [t.dtype for t in reference(ROPE, inputs, params)] == [dtype, dtype]


def test_rope_coefficient_two_is_neox_and_head_size_is_gptj():
    q = torch.randn(3, 8, dtype=torch.float64)
    angle = torch.rand(3, 4, dtype=torch.float64)
    half = torch.cat([angle, angle], -1)  # NeoX: the same angle in both halves
    x1, x2 = q[:, :4], q[:, 4:]
    neox = torch.cat(
        [x1 * half.cos()[:, :4] - x2 * half.sin()[:, :4], x2 * half.cos()[:, 4:] + x1 * half.sin()[:, 4:]], -1
    )
    out = wide(ROPE, [q, q, half.cos(), half.sin(), torch.tensor([3])], {"rotaryCoeff": 2})[0]
    assert_close(out, neox.numpy())
    pairs = angle.repeat_interleave(2, -1)  # GPT-J: angle j on elements 2j and 2j+1
    even, odd = q[:, 0::2], q[:, 1::2]
    gptj = torch.stack([even * angle.cos() - odd * angle.sin(), odd * angle.cos() + even * angle.sin()], -1)
    out = wide(ROPE, [q, q, pairs.cos(), pairs.sin(), torch.tensor([3])], {"rotaryCoeff": 8})[0]
    assert_close(out, gptj.reshape(3, 8).numpy())


def test_rope_errors():
    q, cos = torch.randn(2, 8), torch.randn(2, 8)
    seq = torch.tensor([2])
    assert_fails(ROPE, [q, q, cos, cos, seq], {}, "rotaryCoeff")
    assert_fails(ROPE, [q, q, cos, cos, seq], {"rotaryCoeff": 3}, "rotaryCoeff=3")
    assert_fails(ROPE, [q, q, cos, cos, seq], {"rotaryCoeff": 16}, "rotaryCoeff=16")
    assert_fails(ROPE, [q, torch.randn(2, 12), cos, cos, seq], {"rotaryCoeff": 2}, "k of shape [2, 12]")
    assert_fails(ROPE, [q, q, cos, torch.randn(2, 4), seq], {"rotaryCoeff": 2}, "same shape")
