"""ATB SelfAttentionOperation and PagedAttentionOperation.

Both reduce to one reference attention per sequence (``attend``): ``softmax(scale * q k^T
(clamped) + mask) v`` in float64, grouped-query heads sharing key/value head ``h // group``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registry import INPUT_DTYPES, register_op
from ._common import as_index, choice, count_inputs, deq_scale, fail, flag, integer, number, prod, scalar

SELF_ATTENTION = "SelfAttentionOperation"
PAGED_ATTENTION = "PagedAttentionOperation"

BINARY_MASK_FACTOR = -3e38
"""ATB's kernels read a bfloat16/float32 non-ALiBi mask as 0/1 and scale it by this factor."""


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    bias: torch.Tensor | None = None,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Attention of ``q [s, H, d]`` over ``k [t, Hk, d]``, ``v [t, Hk, dv]`` → ``[s, H, dv]``.

    ``bias`` broadcasts to ``[H, s, t]`` and is added after scaling and clamping.
    """
    tokens, heads, size = q.shape
    kv_heads, group = k.shape[1], heads // k.shape[1]
    grouped = q.reshape(tokens, kv_heads, group, size)  # head h = kv head h // group
    scores = torch.einsum("skgd,tkd->kgst", grouped, k).reshape(heads, tokens, k.shape[0]) * scale
    if clamp is not None:
        scores = scores.clamp(clamp[0], clamp[1])
    if bias is not None:
        scores = scores + bias
    weights = torch.softmax(scores, dim=-1).reshape(kv_heads, group, tokens, k.shape[0])
    return torch.einsum("kgst,tkd->skgd", weights, v).reshape(tokens, heads, v.shape[2])


def _heads(op: str, params: Mapping[str, Any]) -> tuple[int, int]:
    heads = integer(params, op, "headNum")
    kv_heads = integer(params, op, "kvHeadNum", 0) or heads
    if heads <= 0 or kv_heads <= 0 or heads % kv_heads:
        raise fail(op, f"headNum={heads} must be positive and a multiple of kvHeadNum={kv_heads}")
    return heads, kv_heads


def _split_heads(op: str, what: str, tensor: torch.Tensor, rows: int, heads: int) -> torch.Tensor:
    """``tensor`` as ``[rows, heads, size]`` (from ``[rows, heads * size]``, ``[rows, heads, size]``
    or ``[batch, seq, heads, size]``)."""
    if rows and tensor.numel() % rows:
        raise fail(op, f"{what} of shape {list(tensor.shape)} does not hold {rows} tokens")
    width = tensor.numel() // rows if rows else prod(tensor.shape[1:])
    flat = tensor.reshape(rows, width)
    if flat.shape[1] % heads:
        raise fail(op, f"{what} of shape {list(tensor.shape)} does not split into {heads} heads")
    return flat.reshape(rows, heads, flat.shape[1] // heads)


def _unsupported(op: str, params: Mapping[str, Any], name: str, allowed: Sequence[int], meaning: str) -> int:
    return choice(op, name, integer(params, op, name, 0), allowed, meaning)


def _lengths(op: str, what: str, tensor: torch.Tensor) -> torch.Tensor:
    values = as_index(op, what, tensor).reshape(-1)
    if (values < 0).any():
        raise fail(op, f"{what} holds negative lengths")
    return values


def _window(op: str, mask: torch.Tensor, what: str, rows: int, columns: int) -> torch.Tensor:
    if mask.shape[-2] < rows or mask.shape[-1] < columns:
        raise fail(
            op, f"{what} of shape {list(mask.shape)} is smaller than the {rows} x {columns} scores it masks"
        )
    return mask[..., :rows, :columns]


def _causal(rows: int, columns: int) -> torch.Tensor:
    """A causal mask aligned to the end: query ``i`` sees keys up to ``columns - rows + i``."""
    allowed = torch.arange(columns)[None, :] <= torch.arange(rows)[:, None] + (columns - rows)
    return torch.where(allowed, 0.0, float("-inf")).to(torch.float64)


def _output_shape(q: torch.Tensor, heads: int, value_size: int) -> list[int]:
    if q.dim() >= 3:
        return [*q.shape[:-1], value_size]
    return [q.shape[0], heads * value_size]


# ---------------------------------------------------------------- SelfAttentionOperation

_ENCODER_DECODER = (0, 1, 2)
_PA_ENCODER = 3
_MASK_NONE, _MASK_NORM, _MASK_ALIBI, _MASK_NORM_COMPRESS = 0, 1, 2, 3


def _self_attention_layout(params: Mapping[str, Any]) -> list[str]:
    op = SELF_ATTENTION
    calc = choice(
        op,
        "calcType",
        integer(params, op, "calcType", 0),
        (0, 1, 2, 3),
        "0/1/2 flash attention with caches, 3 paged-attention encoder (4, prefix encoder, is not supported)",
    )
    cfg = choice(op, "kvcacheCfg", integer(params, op, "kvcacheCfg", 0), (0, 1), "0 write caches, 1 bypass")
    mask = choice(
        op,
        "maskType",
        integer(params, op, "maskType", 0),
        (0, 1, 2, 3),
        "0 none, 1 norm, 2 alibi, 3 compressed norm (compressed alibi, sliding-window and causal "
        "masks are not supported)",
    )
    _unsupported(op, params, "quantType", (0,), "quantised QKV is not supported")
    _unsupported(op, params, "scaleType", (0,), "LogN scaling is not supported")
    _unsupported(op, params, "inputLayout", (0,), "only BSND is supported")
    _unsupported(op, params, "mlaVHeadSize", (0,), "MLA is not supported")
    _unsupported(op, params, "windowSize", (0,), "sliding-window attention is not supported")
    masked = ["mask"] if mask != _MASK_NONE else []
    if calc == _PA_ENCODER:
        return ["q", "k", "v", *masked, "seqLen"]
    status = ["batchRunStatus"] if flag(params, op, "batchRunStatusEnable", False) else []
    caches = ["q", "k", "v", "cacheK", "cacheV"] if cfg == 0 else ["q", "cacheK", "cacheV"]
    return [*caches, *masked, "tokenOffset", "seqLen", "layerId", *status]


def _mask_factor(params: Mapping[str, Any], dtype: torch.dtype) -> float:
    alibi = integer(params, SELF_ATTENTION, "maskType", 0) == _MASK_ALIBI
    high_precision = integer(params, SELF_ATTENTION, "kernelType", 0) == 1
    if dtype == torch.float16 or alibi or high_precision:
        return 1.0
    return BINARY_MASK_FACTOR


def _self_attention_mask(
    params: Mapping[str, Any], mask: torch.Tensor | None, batch: int, rows: int, columns: int, factor: float
) -> torch.Tensor | None:
    kind = integer(params, SELF_ATTENTION, "maskType", 0)
    if mask is None:
        return None
    compressed = kind == _MASK_NORM_COMPRESS or (
        kind == _MASK_NORM
        and integer(params, SELF_ATTENTION, "isTriuMask", 0) == 1
        and (mask.shape[-2] < rows or mask.shape[-1] < columns)
    )
    if compressed:
        return _causal(rows, columns)
    if mask.dim() == 4 or (mask.dim() == 3 and kind != _MASK_ALIBI):
        chosen = mask[batch if mask.shape[0] > 1 else 0]
    elif mask.dim() in (2, 3):
        chosen = mask
    else:
        raise fail(SELF_ATTENTION, f"mask must be 2-D to 4-D, got {list(mask.shape)}")
    return _window(SELF_ATTENTION, chosen, "mask", rows, columns) * factor


@register_op(SELF_ATTENTION, required_params=("headNum",), inputs=(4, 11))
def self_attention(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Flash attention per batch. calcType 0/1/2 with ``kvcacheCfg`` 0: inputs ``[q, k, v, cacheK,
    cacheV, (mask), tokenOffset, seqLen, layerId, (batchRunStatus)]``, the keys of batch ``b`` being
    ``cacheK[layer, b, :tokenOffset - seqLen]`` then the new ``k``; kvcacheCfg 1 (bypass):
    ``[q, cacheK, cacheV, (mask), tokenOffset, seqLen, layerId, (batchRunStatus)]``; calcType 3:
    ``[q, k, v, (mask), seqLen]``. Scores: ``(qScale q) k^T qkScale``, clamped, plus the mask."""
    op = SELF_ATTENTION
    names = _self_attention_layout(params)
    count_inputs(op, inputs, len(names), "[" + ", ".join(names) + "]")
    t = dict(zip(names, inputs, strict=True))
    heads, kv_heads = _heads(op, params)
    q_lengths = _lengths(op, "seqLen", t["seqLen"])
    tokens = int(q_lengths.sum())
    q = _split_heads(op, "q", t["q"], tokens, heads) * number(params, op, "qScale", 1.0)
    head_size = q.shape[2]
    scale = number(params, op, "qkScale", 1.0)
    clamp = None
    if integer(params, op, "clampType", 0) == 1:
        clamp = (number(params, op, "clampMin", 0.0), number(params, op, "clampMax", 0.0))
    factor = _mask_factor(params, params[INPUT_DTYPES][0])
    keys, values = _self_attention_kv(t, q_lengths, kv_heads, head_size)
    status = (
        as_index(op, "batchRunStatus", t["batchRunStatus"]).reshape(-1) if "batchRunStatus" in t else None
    )
    value_size = values[0].shape[2] if values else head_size
    out = torch.zeros(tokens, heads, value_size, dtype=torch.float64)
    starts = torch.cumsum(q_lengths, 0) - q_lengths
    for b, (start, rows) in enumerate(zip(starts.tolist(), q_lengths.tolist(), strict=True)):
        if rows == 0 or (status is not None and int(status[b]) == 0):
            continue
        bias = _self_attention_mask(params, t.get("mask"), b, rows, keys[b].shape[0], factor)
        out[start : start + rows] = attend(q[start : start + rows], keys[b], values[b], scale, bias, clamp)
    return [out.reshape(_output_shape(t["q"], heads, value_size))]


def _self_attention_kv(
    t: Mapping[str, torch.Tensor], q_lengths: torch.Tensor, kv_heads: int, head_size: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The keys and values each batch attends to, as ``[t, kvHeads, size]``."""
    op = SELF_ATTENTION
    batch = q_lengths.numel()
    if "cacheK" not in t:  # paged-attention encoder: each sequence attends to its own new tokens
        tokens = int(q_lengths.sum())
        k = _split_heads(op, "k", t["k"], tokens, kv_heads)
        v = _split_heads(op, "v", t["v"], tokens, kv_heads)
        pieces = [int(n) for n in q_lengths]
        return list(k.split(pieces)), list(v.split(pieces))
    ends = _lengths(op, "tokenOffset", t["tokenOffset"])
    if ends.numel() != batch:
        raise fail(op, f"tokenOffset has {ends.numel()} values, seqLen {batch}")
    layer = int(scalar(op, "layerId", as_index(op, "layerId", t["layerId"])))
    caches = []
    for name in ("cacheK", "cacheV"):
        cache = t[name]
        if cache.dim() != 4 or cache.shape[1] < batch or not 0 <= layer < cache.shape[0]:
            raise fail(
                op,
                f"{name} of shape {list(cache.shape)} is not [layers, batch>={batch}, maxSeq, hidden] "
                f"holding layer {layer}",
            )
        if (ends > cache.shape[2]).any():
            raise fail(op, f"tokenOffset exceeds the {name} length {cache.shape[2]}")
        caches.append(cache[layer])
    new = "k" in t
    if new:
        if (ends < q_lengths).any():
            raise fail(op, "tokenOffset must be at least seqLen for every batch")
        tokens = int(q_lengths.sum())
        fresh = [
            _split_heads(op, n, t[n], tokens, kv_heads).split([int(x) for x in q_lengths]) for n in ("k", "v")
        ]
    keys, values = [], []
    for b in range(batch):
        past = int(ends[b] - q_lengths[b]) if new else int(ends[b])
        per_batch = []
        for index, cache in enumerate(caches):
            rows = _split_heads(op, "cache rows", cache[b, :past], past, kv_heads)
            if new:
                rows = torch.cat((rows, fresh[index][b].to(torch.float64)), 0)
            per_batch.append(rows.to(torch.float64))
        keys.append(per_batch[0])
        values.append(per_batch[1])
    if keys and keys[0].shape[2] != head_size:
        raise fail(op, f"keys have head size {keys[0].shape[2]}, queries {head_size}")
    return keys, values


# ---------------------------------------------------------------- PagedAttentionOperation


def _paged_layout(params: Mapping[str, Any]) -> list[str]:
    op = PAGED_ATTENTION
    mask = choice(
        op,
        "maskType",
        integer(params, op, "maskType", 0),
        (0, 1, 2, 3),
        "0 none, 1 norm, 2 alibi, 3 spec (mask-free and compressed masks are not supported)",
    )
    quant = choice(
        op,
        "quantType",
        integer(params, op, "quantType", 0),
        (0, 1),
        "0 none, 1 int8 KV de-quantisation (quantised QKV is not supported)",
    )
    compress = choice(
        op,
        "compressType",
        integer(params, op, "compressType", 0),
        (0, 1),
        "0 none, 1 kv-head compression (rope compression is not supported)",
    )
    calc = choice(op, "calcType", integer(params, op, "calcType", 0), (0, 1), "0 decode, 1 spec decode")
    _unsupported(op, params, "scaleType", (0,), "LogN scaling is not supported")
    _unsupported(op, params, "inputLayout", (0,), "only BSND is supported")
    if quant and compress:
        raise fail(op, "quantType=1 together with compressType=1 is not supported by the reference")
    names = ["q", "keyCache"] + ([] if integer(params, op, "mlaVHeadSize", 0) else ["valueCache"])
    names += ["blockTables", "contextLens"] + ["mask"] * (mask != 0)
    names += ["batchRunStatus"] * flag(params, op, "batchRunStatusEnable", False)
    if quant:
        offsets = flag(params, op, "hasQuantOffset", False)
        names += ["kDescale"] + ["kOffset"] * offsets + ["vDescale"] + ["vOffset"] * offsets
    return names + ["qLens"] * (calc == 1)


def _paged_cache(op: str, cache: torch.Tensor, kv_heads: int, head_size: int, what: str) -> torch.Tensor:
    """A block cache as ND ``[blocks, blockSize, kvHeads, headSize]`` (310P NZ ``[blocks, kvHeads *
    headSize / 16, blockSize, 16]`` is converted)."""
    if cache.dim() != 4:
        raise fail(op, f"{what} must be 4-D, got {list(cache.shape)}")
    if cache.shape[2] == kv_heads and cache.shape[3] == head_size:
        return cache
    blocks, chunks, block_size, c0 = cache.shape
    if chunks * c0 == kv_heads * head_size:
        return cache.permute(0, 2, 1, 3).reshape(blocks, block_size, kv_heads, head_size)
    raise fail(
        op,
        f"{what} of shape {list(cache.shape)} holds neither ND nor NZ blocks of "
        f"{kv_heads} heads x {head_size}",
    )


def _dequant(tensors: Mapping[str, torch.Tensor], cache: torch.Tensor, which: str) -> torch.Tensor:
    channels = cache.shape[2] * cache.shape[3]
    values = cache.to(torch.float64)
    offset = tensors.get(f"{which}Offset")
    if offset is not None and offset.numel():
        values = values + _per_channel(offset.to(torch.float64), channels, f"{which}Offset", cache)
    return values * _per_channel(deq_scale(tensors[f"{which}Descale"]), channels, f"{which}Descale", cache)


def _per_channel(values: torch.Tensor, channels: int, what: str, cache: torch.Tensor) -> torch.Tensor:
    if values.numel() != channels:
        raise fail(
            PAGED_ATTENTION, f"{what} has {values.numel()} values, expected {channels} (kvHeads x headSize)"
        )
    return values.reshape(cache.shape[2], cache.shape[3])


def _paged_mask(
    mask: torch.Tensor | None, sequence: int, row: int, rows: int, columns: int, head_slice: slice
):
    if mask is None:
        return None
    if mask.dim() == 2:  # one row per query token
        chosen = mask[row : row + rows]
    elif mask.dim() == 3:  # [batch or 1, rows, context]
        chosen = mask[sequence if mask.shape[0] > 1 else 0]
    elif mask.dim() == 4:  # [batch or 1, heads, rows, context]
        chosen = mask[sequence if mask.shape[0] > 1 else 0][head_slice]
    else:
        raise fail(PAGED_ATTENTION, f"mask must be 2-D to 4-D, got {list(mask.shape)}")
    return _window(PAGED_ATTENTION, chosen, "mask", rows, columns)


@register_op(PAGED_ATTENTION, required_params=("headNum",), inputs=(4, 12))
def paged_attention(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Decode attention over block caches: inputs ``[q, keyCache, valueCache, blockTables,
    contextLens, (mask), (batchRunStatus), (kDescale, (kOffset), vDescale, (vOffset)), (qLens)]``;
    sequence ``b`` reads ``contextLens[b]`` tokens from blocks ``blockTables[b]``; int8 caches are
    de-quantised as ``(cache + offset) * descale`` per channel."""
    op = PAGED_ATTENTION
    names = _paged_layout(params)
    count_inputs(op, inputs, len(names), "[" + ", ".join(names) + "]")
    t = dict(zip(names, inputs, strict=True))
    heads, kv_heads = _heads(op, params)
    q_in = t["q"]
    if q_in.dim() not in (2, 3):
        raise fail(op, f"q must be [tokens, heads, headSize] or [tokens, hidden], got {list(q_in.shape)}")
    tokens = q_in.shape[0]
    q = _split_heads(op, "q", q_in, tokens, heads)
    q_scale = number(params, op, "qScale", 0.0)
    if q_scale not in (0.0, 1.0):
        q = q * q_scale
    head_size = q.shape[2]
    compress = integer(params, op, "compressType", 0) == 1
    cache_heads = 1 if compress else kv_heads
    key_cache = _paged_cache(op, t["keyCache"], cache_heads, head_size, "keyCache")
    v_size = integer(params, op, "mlaVHeadSize", 0)
    if v_size:  # MLA: the values are the first mlaVHeadSize channels of the keys
        value_cache = key_cache[..., :v_size]
    else:
        value_cache = _paged_cache(op, t["valueCache"], cache_heads, head_size, "valueCache")
    if "kDescale" in t:
        key_cache, value_cache = _dequant(t, key_cache, "k"), _dequant(t, value_cache, "v")
    key_cache, value_cache = key_cache.to(torch.float64), value_cache.to(torch.float64)
    contexts = _lengths(op, "contextLens", t["contextLens"])
    tables = as_index(op, "blockTables", t["blockTables"])
    q_lengths = (
        _lengths(op, "qLens", t["qLens"])
        if "qLens" in t
        else torch.ones(contexts.numel() // (kv_heads if compress else 1), dtype=torch.int64)
    )
    batch = q_lengths.numel()
    sequences = batch * (kv_heads if compress else 1)
    if contexts.numel() != sequences or tables.dim() != 2 or tables.shape[0] != sequences:
        raise fail(
            op,
            f"contextLens {list(contexts.shape)} and blockTables {list(tables.shape)} must describe "
            f"{sequences} sequences",
        )
    if int(q_lengths.sum()) != tokens:
        raise fail(op, f"q holds {tokens} tokens, but the query lengths sum to {int(q_lengths.sum())}")
    status = (
        as_index(op, "batchRunStatus", t["batchRunStatus"]).reshape(-1) if "batchRunStatus" in t else None
    )
    scale = number(params, op, "qkScale", 1.0)
    out = torch.zeros(tokens, heads, value_cache.shape[3], dtype=torch.float64)
    group = heads // kv_heads
    starts = (torch.cumsum(q_lengths, 0) - q_lengths).tolist()
    for sequence in range(sequences):
        b = sequence // kv_heads if compress else sequence
        head_slice = (
            slice((sequence % kv_heads) * group, (sequence % kv_heads + 1) * group)
            if compress
            else slice(None)
        )
        row, rows, context = starts[b], int(q_lengths[b]), int(contexts[sequence])
        if context == 0 or rows == 0 or (status is not None and int(status[b]) == 0):
            continue
        blocks = _blocks(tables[sequence], context, key_cache.shape)
        keys = key_cache[blocks].flatten(0, 1)[:context]
        values = value_cache[blocks].flatten(0, 1)[:context]
        bias = _paged_mask(t.get("mask"), b, row, rows, context, head_slice)
        out[row : row + rows, head_slice] = attend(q[row : row + rows, head_slice], keys, values, scale, bias)
    return [out.reshape(_output_shape(q_in, heads, value_cache.shape[3]))]


def _blocks(table: torch.Tensor, context: int, cache_shape: Sequence[int]) -> torch.Tensor:
    count = -(-context // cache_shape[1])
    if table.numel() < count:
        raise fail(PAGED_ATTENTION, f"a block table of {table.numel()} entries cannot hold {context} tokens")
    blocks = table[:count]
    if (blocks < 0).any() or (blocks >= cache_shape[0]).any():
        raise fail(PAGED_ATTENTION, f"block table entries must lie in [0, {cache_shape[0]})")
    return blocks


# ---------------------------------------------------------------- RopeOperation

ROPE = "RopeOperation"


def _rotate(
    op: str, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, coeff: int, what: str
) -> torch.Tensor:
    tokens, rot_dim = cos.shape
    if x.numel() % (tokens * rot_dim):
        raise fail(
            op, f"{what} of shape {list(x.shape)} does not split into {tokens} tokens of heads of {rot_dim}"
        )
    heads = x.reshape(tokens, -1, coeff // 2, 2, rot_dim // coeff)
    first, second = heads[..., 0, :], heads[..., 1, :]
    rotated = torch.stack((-second, first), dim=-2).reshape(tokens, -1, rot_dim)
    out = heads.reshape(tokens, -1, rot_dim) * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)
    return out.reshape(x.shape)


@register_op(ROPE, required_params=("rotaryCoeff",), inputs=5)
def rope(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Rotary embedding of ``q`` and ``k`` with per-token ``cos``/``sin [ntokens, rotDim]``: each head
    is cut into ``rotaryCoeff`` chunks and chunk pairs ``(2i, 2i+1)`` rotate, ``out = x cos +
    (-x_{2i+1}, x_{2i}) sin``: 2 is the half split (NeoX), 4 rotates each half (ChatGLM), ``rotDim``
    rotates adjacent pairs (GPT-J). Inputs ``[q, k, cos, sin, seqLen]``."""
    q, k, cos, sin, _ = inputs
    coeff = integer(params, ROPE, "rotaryCoeff")
    if cos.dim() < 1 or cos.shape != sin.shape:
        raise fail(ROPE, f"cos {list(cos.shape)} and sin {list(sin.shape)} must have the same shape")
    rot_dim = cos.shape[-1]
    if coeff < 2 or coeff % 2 or rot_dim % coeff:
        raise fail(ROPE, f"parameter rotaryCoeff={coeff} must be even and divide the rotary size {rot_dim}")
    cos, sin = cos.reshape(-1, rot_dim), sin.reshape(-1, rot_dim)
    return [_rotate(ROPE, q, cos, sin, coeff, "q"), _rotate(ROPE, k, cos, sin, coeff, "k")]
