"""ATB KvCacheOperation and ReshapeAndCacheOperation: in-place writes of new keys/values into caches.

Both return the caches after the write (the new values of their in-place inputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..registry import register_op
from ._common import as_index, choice, count_inputs, fail, integer, scalar

KV_CACHE = "KvCacheOperation"
RESHAPE_AND_CACHE = "ReshapeAndCacheOperation"


def _lengths(op: str, what: str, tensor: torch.Tensor, count: int | None = None) -> torch.Tensor:
    values = as_index(op, what, tensor).reshape(-1)
    if count is not None and values.numel() != count:
        raise fail(op, f"{what} has {values.numel()} values, expected {count}")
    if (values < 0).any():
        raise fail(op, f"{what} holds negative values")
    return values


def _positions(lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For sequences of ``lengths`` packed one after the other: each row's sequence and position."""
    sequence = torch.repeat_interleave(torch.arange(lengths.numel()), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    return sequence, torch.arange(int(lengths.sum())) - starts[sequence]


@register_op(KV_CACHE, inputs=5, inplace_outputs=(2,), output_dtype=lambda inputs, params: [inputs[2].dtype])
def kv_cache(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Inputs ``[newKv [ntokens, hidden], layerId [1], cache [layers, batch, maxSeq, hidden],
    tokenOffset [batch], seqLen [batch]]``: the new rows of batch ``b`` go to
    ``cache[layer, b, tokenOffset[b] - seqLen[b] : tokenOffset[b]]``; returns the cache."""
    new_kv, layer_id, cache, token_offset, seq_len = inputs
    if cache.dim() != 4:
        raise fail(KV_CACHE, f"cache must be [layers, batch, maxSeq, hidden], got {list(cache.shape)}")
    layers, batch, max_seq, hidden = cache.shape
    layer = int(scalar(KV_CACHE, "layerId", as_index(KV_CACHE, "layerId", layer_id)))
    if not 0 <= layer < layers:
        raise fail(KV_CACHE, f"layerId {layer} is out of range for a cache of {layers} layers")
    lengths = _lengths(KV_CACHE, "seqLen", seq_len, batch)
    ends = _lengths(KV_CACHE, "tokenOffset", token_offset, batch)
    if (ends < lengths).any() or (ends > max_seq).any():
        raise fail(KV_CACHE, f"tokenOffset must lie in [seqLen, {max_seq}] for every batch")
    if new_kv.dim() < 2 or new_kv.numel() != int(lengths.sum()) * hidden:
        raise fail(
            KV_CACHE, f"newKv has shape {list(new_kv.shape)}, expected [{int(lengths.sum())}, {hidden}]"
        )
    rows = new_kv.reshape(int(lengths.sum()), hidden)
    sequence, position = _positions(lengths)
    result = cache.clone()
    result[layer, sequence, ends[sequence] - lengths[sequence] + position] = rows.to(result.dtype)
    return [result]


_ND, _BYPASS, _NZ = 0, 1, 2


def _cache_slots(op: str, cache: torch.Tensor, token: Sequence[int], nz: bool) -> tuple[int, int]:
    """``(block count, block size)`` of a cache, checking its layout against one token's shape."""
    if cache.dim() != 4:
        raise fail(op, f"caches must be 4-D, got {list(cache.shape)}")
    if nz:
        blocks, chunks, block_size, c0 = cache.shape
        if chunks * c0 != token[0] * token[1]:
            raise fail(op, f"NZ cache {list(cache.shape)} does not hold tokens of {list(token)}")
        return blocks, block_size
    blocks, block_size = cache.shape[:2]
    if list(cache.shape[2:]) != list(token):
        raise fail(op, f"cache {list(cache.shape)} does not hold tokens of shape {list(token)}")
    return blocks, block_size


def _is_nz(cache: torch.Tensor, token: Sequence[int], cfg: int) -> bool:
    """NZ cache ``[blocks, heads * headSize / c0, blockSize, c0]`` when configured, or when the ND
    layout ``[blocks, blockSize, heads, headSize]`` does not fit but the NZ one does (310P dumps)."""
    if cfg == _NZ:
        return True
    fits_nd = cache.dim() == 4 and list(cache.shape[2:]) == list(token)
    fits_nz = (
        cache.dim() == 4
        and cache.shape[3] in (16, 32)
        and cache.shape[1] * cache.shape[3] == token[0] * token[1]
    )
    return not fits_nd and fits_nz


def _scatter(
    cache: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor, block_size: int, nz: bool
) -> torch.Tensor:
    result = cache.clone()
    block, offset = slots // block_size, slots % block_size
    values = rows.to(result.dtype)
    if nz:
        result[block, :, offset, :] = values.reshape(rows.shape[0], result.shape[1], result.shape[3])
    else:
        result[block, offset] = values
    return result


def _checked_slots(op: str, slots: torch.Tensor, count: int, capacity: int) -> torch.Tensor:
    if slots.numel() != count:
        raise fail(op, f"slotMapping has {slots.numel()} values, expected {count}")
    if (slots >= capacity).any():
        raise fail(op, f"slotMapping holds slots beyond the cache capacity {capacity}")
    return slots


def _reshape_and_cache_layout(params: Mapping[str, Any]) -> tuple[int, int, list[str]]:
    cfg = choice(
        RESHAPE_AND_CACHE, "kvCacheCfg", integer(params, RESHAPE_AND_CACHE, "kvCacheCfg", _ND), (0, 1, 2)
    )
    compress = choice(
        RESHAPE_AND_CACHE,
        "compressType",
        integer(params, RESHAPE_AND_CACHE, "compressType", 0),
        (0, 1),
        "0 none, 1 kv-head compression (2, rope compression, is not supported)",
    )
    if cfg == _BYPASS:
        return cfg, compress, ["key", "keyCache", "slotMapping"]
    names = ["key", "value", "keyCache", "valueCache", "slotMapping"]
    return cfg, compress, names + ["wins", "seqLen"] * (compress == 1)


def _reshape_and_cache_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.dtype]:
    cfg, _, _ = _reshape_and_cache_layout(params)
    return [inputs[1].dtype] if cfg == _BYPASS else [inputs[2].dtype, inputs[3].dtype]


@register_op(RESHAPE_AND_CACHE, inputs=(3, 7), inplace_outputs=(2, 3), output_dtype=_reshape_and_cache_dtypes)
def reshape_and_cache(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Inputs ``[key, value, keyCache, valueCache, slotMapping(, wins, seqLen)]`` (kvCacheCfg 1:
    ``[key, keyCache, slotMapping]``): token ``i`` goes to block ``slot // blockSize``, offset
    ``slot % blockSize`` (negative slots skipped); returns the caches."""
    cfg, compress, names = _reshape_and_cache_layout(params)
    count_inputs(RESHAPE_AND_CACHE, inputs, len(names), "[" + ", ".join(names) + "]")
    tensors = dict(zip(names, inputs, strict=True))
    slots = as_index(RESHAPE_AND_CACHE, "slotMapping", tensors["slotMapping"]).reshape(-1)
    pairs = [("key", "keyCache")] + ([("value", "valueCache")] if cfg != _BYPASS else [])
    if compress == 1:
        return _compressed(tensors, slots, pairs)
    results = []
    for source, target in pairs:
        rows = tensors[source]
        if rows.dim() != 3:
            raise fail(
                RESHAPE_AND_CACHE, f"{source} must be [ntokens, heads, headSize], got {list(rows.shape)}"
            )
        cache = tensors[target]
        nz = _is_nz(cache, rows.shape[1:], cfg)
        blocks, block_size = _cache_slots(RESHAPE_AND_CACHE, cache, rows.shape[1:], nz)
        used = _checked_slots(RESHAPE_AND_CACHE, slots, rows.shape[0], blocks * block_size) >= 0
        results.append(_scatter(cache, rows[used], slots[used], block_size, nz))
    return results


def _compressed(
    tensors: Mapping[str, torch.Tensor], slots: torch.Tensor, pairs: Sequence[tuple[str, str]]
) -> list[torch.Tensor]:
    """KV-head compression: for batch ``b`` and head ``h`` (entry ``i = b * heads + h``), the last
    ``wins[i]`` tokens of the sequence go to consecutive slots from ``slotMapping[i]``; caches
    hold one head per slot (``[blocks, blockSize, 1, headSize]``)."""
    key = tensors["key"]
    if key.dim() != 3:
        raise fail(RESHAPE_AND_CACHE, f"key must be [ntokens, heads, headSize], got {list(key.shape)}")
    tokens, heads, head_size = key.shape
    lengths = _lengths(RESHAPE_AND_CACHE, "seqLen", tensors["seqLen"])
    wins = _lengths(RESHAPE_AND_CACHE, "wins", tensors["wins"], lengths.numel() * heads)
    if int(lengths.sum()) != tokens:
        raise fail(RESHAPE_AND_CACHE, f"seqLen sums to {int(lengths.sum())}, but key holds {tokens} tokens")
    entry = torch.arange(wins.numel())
    batch, head = entry // heads, entry % heads
    if (wins > lengths[batch]).any():
        raise fail(RESHAPE_AND_CACHE, "wins holds a window longer than its sequence")
    valid = _checked_slots(RESHAPE_AND_CACHE, slots, wins.numel(), 2**62) >= 0
    owner, step = _positions(torch.where(valid, wins, 0))
    ends = torch.cumsum(lengths, 0)
    token = ends[batch[owner]] - wins[owner] + step
    destination = slots[owner] + step
    results = []
    for source, target in pairs:
        cache = tensors[target]
        blocks, block_size = _cache_slots(RESHAPE_AND_CACHE, cache, (1, head_size), nz=False)
        if (destination >= blocks * block_size).any():
            raise fail(RESHAPE_AND_CACHE, f"windows run past the cache capacity {blocks * block_size}")
        rows = tensors[source][token, head[owner]].unsqueeze(1)
        results.append(_scatter(cache, rows, destination, block_size, nz=False))
    return results
