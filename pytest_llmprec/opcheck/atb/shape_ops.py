"""ATB operators that move data without arithmetic: Split, Concat, Gather, Slice, Transpose,
Transdata, Repeat, AsStrided, SetValue, Pad and Unpad."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...formats.device_layouts import nd_to_nz, nz_to_nd
from ..registry import register_op
from ._common import as_index, axis_of, choice, fail, integer, integers, like_input, prod

SPLIT = "SplitOperation"
CONCAT = "ConcatOperation"
GATHER = "GatherOperation"
SLICE = "SliceOperation"
TRANSPOSE = "TransposeOperation"
TRANSDATA = "TransdataOperation"
REPEAT = "RepeatOperation"
AS_STRIDED = "AsStridedOperation"
SET_VALUE = "SetValueOperation"
PAD = "PadOperation"
UNPAD = "UnpadOperation"


@register_op(SPLIT, required_params=("splitNum", "splitDim"), inputs=1)
def split(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``splitSizes`` given: pieces of those sizes along ``splitDim``; else ``splitNum`` equal pieces."""
    x = inputs[0]
    dim = axis_of(SPLIT, "splitDim", integer(params, SPLIT, "splitDim"), x.dim())
    sizes = integers(params, SPLIT, "splitSizes", [])
    if sizes:
        if any(s < 1 for s in sizes) or sum(sizes) != x.shape[dim]:
            raise fail(SPLIT, f"parameter splitSizes={sizes} must be positive and sum to {x.shape[dim]}")
        return list(x.split(sizes, dim))
    count = choice(SPLIT, "splitNum", integer(params, SPLIT, "splitNum"), (2, 3))
    if x.shape[dim] % count:
        raise fail(SPLIT, f"parameter splitNum={count} does not divide size {x.shape[dim]} of axis {dim}")
    return list(x.chunk(count, dim))


@register_op(CONCAT, required_params=("concatDim",), inputs=(2, None))
def concat(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """The inputs joined along ``concatDim`` (negative counts from the end)."""
    first = inputs[0]
    dim = axis_of(CONCAT, "concatDim", integer(params, CONCAT, "concatDim"), first.dim())
    for tensor in inputs[1:]:
        other = [s for i, s in enumerate(tensor.shape) if i != dim]
        if tensor.dim() != first.dim() or other != [s for i, s in enumerate(first.shape) if i != dim]:
            raise fail(
                CONCAT, f"inputs {list(first.shape)} and {list(tensor.shape)} differ outside axis {dim}"
            )
    return [torch.cat(list(inputs), dim)]


@register_op(GATHER, required_params=("axis", "batchDims"), inputs=2)
def gather(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``x`` gathered along ``axis`` by ``indices``; the first ``batchDims`` axes are shared batch axes
    (output shape ``x[:axis] + indices[batchDims:] + x[axis+1:]``)."""
    x, indices = inputs[0], as_index(GATHER, "indices", inputs[1])
    axis = axis_of(GATHER, "axis", integer(params, GATHER, "axis"), x.dim())
    batch_dims = integer(params, GATHER, "batchDims")
    if not 0 <= batch_dims <= min(axis, indices.dim()):
        raise fail(
            GATHER, f"parameter batchDims={batch_dims} must lie in [0, min(axis={axis}, {indices.dim()})]"
        )
    if list(x.shape[:batch_dims]) != list(indices.shape[:batch_dims]):
        raise fail(
            GATHER,
            f"the first {batch_dims} axes of x {list(x.shape)} and indices {list(indices.shape)} differ",
        )
    size = x.shape[axis]
    if indices.numel() and (indices.min() < 0 or indices.max() >= size):
        raise fail(GATHER, f"indices must lie in [0, {size}) for axis {axis} of x {list(x.shape)}")
    batch = prod(x.shape[:batch_dims])
    blocks = x.reshape(batch, prod(x.shape[batch_dims:axis]), size, prod(x.shape[axis + 1 :]))
    flat = indices.reshape(batch, -1)
    picked = blocks[torch.arange(batch).unsqueeze(1), :, flat]  # [batch, n, before, after]
    shape = [*x.shape[:axis], *indices.shape[batch_dims:], *x.shape[axis + 1 :]]
    return [picked.permute(0, 2, 1, 3).reshape(shape)]


@register_op(SLICE, required_params=("offsets", "size"), inputs=1)
def slice_(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``x[offsets[i] : offsets[i] + size[i]]`` per axis; negative offsets wrap, size -1 runs to the end."""
    x = inputs[0]
    offsets, sizes = integers(params, SLICE, "offsets"), integers(params, SLICE, "size")
    if len(offsets) != x.dim() or len(sizes) != x.dim():
        raise fail(
            SLICE,
            f"parameters offsets={offsets} and size={sizes} need {x.dim()} entries for x {list(x.shape)}",
        )
    index = []
    for axis, (offset, size, length) in enumerate(zip(offsets, sizes, x.shape, strict=True)):
        start = offset + length if offset < 0 else offset
        stop = length if size == -1 else start + size
        if not 0 <= start <= stop <= length or size < -1:
            raise fail(SLICE, f"offset {offset} and size {size} fall outside axis {axis} of length {length}")
        index.append(slice(start, stop))
    return [x[tuple(index)]]


@register_op(TRANSPOSE, required_params=("perm",), inputs=1)
def transpose(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``x.permute(perm)``."""
    x = inputs[0]
    perm = integers(params, TRANSPOSE, "perm")
    if sorted(perm) != list(range(x.dim())):
        raise fail(TRANSPOSE, f"parameter perm={perm} is not a permutation of the {x.dim()} axes of x")
    return [x.permute(perm)]


_NZ_TO_ND, _ND_TO_NZ = 1, 2


@register_op(TRANSDATA, required_params=("transdataType",), inputs=1)
def transdata(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``transdataType`` 2: ND ``[b, m, n]`` (or ``[m, n]``) → FRACTAL_NZ ``[b, n1, m1m0, n0]``
    (rows padded to 16, columns to n0 = 16, 32 for int8); 1: NZ → ND ``[b, outCrops[0], outCrops[1]]``."""
    x = inputs[0]
    kind = choice(
        TRANSDATA,
        "transdataType",
        integer(params, TRANSDATA, "transdataType"),
        (1, 2),
        "1 FRACTAL_NZ to ND, 2 ND to FRACTAL_NZ",
    )
    if kind == _ND_TO_NZ:
        if x.dim() not in (2, 3):
            raise fail(TRANSDATA, f"ND to NZ needs a 2-D or 3-D input, got {list(x.shape)}")
        matrix = x if x.dim() == 3 else x.unsqueeze(0)
        storage = nd_to_nz(matrix)  # [b, n1, m1, 16, n0]
        batch, n1, m1, m0, n0 = storage.shape
        return [storage.reshape(batch, n1, m1 * m0, n0)]
    if x.dim() != 4:
        raise fail(TRANSDATA, f"NZ to ND needs a 4-D [b, n1, m1m0, n0] input, got {list(x.shape)}")
    batch, n1, rows, n0 = x.shape
    crops = integers(params, TRANSDATA, "outCrops", [rows, n1 * n0])
    if crops == [0, 0]:
        crops = [rows, n1 * n0]
    if len(crops) != 2 or not (0 < crops[0] <= rows and 0 < crops[1] <= n1 * n0):
        raise fail(TRANSDATA, f"parameter outCrops={crops} must be 2 sizes within [{rows}, {n1 * n0}]")
    try:
        return [nz_to_nd(x, (batch, crops[0], crops[1]))]
    except ValueError as exc:
        raise fail(TRANSDATA, str(exc)) from None


@register_op(REPEAT, required_params=("multiples",), inputs=1)
def repeat(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """``x.repeat(multiples)`` (x is broadcast to ``len(multiples)`` axes first)."""
    x = inputs[0]
    multiples = integers(params, REPEAT, "multiples")
    if len(multiples) < x.dim() or any(m < 1 for m in multiples):
        raise fail(REPEAT, f"parameter multiples={multiples} needs at least {x.dim()} positive entries")
    return [x.repeat(multiples)]


@register_op(AS_STRIDED, required_params=("size", "stride", "offset"), inputs=1)
def as_strided(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """A view of the contiguous elements of x with ``size``, ``stride`` and ``offset[0]``."""
    x = inputs[0].contiguous().reshape(-1)
    size, stride = integers(params, AS_STRIDED, "size"), integers(params, AS_STRIDED, "stride")
    offset = integers(params, AS_STRIDED, "offset")
    if len(size) != len(stride) or len(offset) != 1 or any(s < 0 for s in [*size, *stride, *offset]):
        raise fail(
            AS_STRIDED,
            f"parameters size={size}, stride={stride} (same length) and offset={offset} "
            "(one value) must not be negative",
        )
    if prod(size) and offset[0] + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= x.numel():
        raise fail(
            AS_STRIDED, f"size={size}, stride={stride}, offset={offset} reach past the {x.numel()} elements"
        )
    return [torch.as_strided(x, size, stride, offset[0]).clone()]


@register_op(
    SET_VALUE,
    required_params=("starts", "ends", "strides"),
    inputs=2,
    inplace_outputs=(0,),
    output_dtype=like_input(0),
)
def set_value(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """In place: ``dst[starts:ends] = src`` (strides all 1); returns dst."""
    dst, src = inputs
    starts, ends = integers(params, SET_VALUE, "starts"), integers(params, SET_VALUE, "ends")
    strides = integers(params, SET_VALUE, "strides")
    if not len(starts) == len(ends) == len(strides) == dst.dim() or any(s != 1 for s in strides):
        raise fail(SET_VALUE, f"parameters starts, ends and strides need {dst.dim()} entries, strides all 1")
    window = tuple(slice(a, b) for a, b in zip(starts, ends, strict=True))
    spans = [b - a for a, b in zip(starts, ends, strict=True)]
    if any(a < 0 or b > n for a, b, n in zip(starts, ends, dst.shape, strict=True)) or spans != list(
        src.shape
    ):
        raise fail(
            SET_VALUE,
            f"window {starts}..{ends} of dst {list(dst.shape)} does not match src {list(src.shape)}",
        )
    result = dst.clone()
    result[window] = src.to(result.dtype)
    return [result]


def _lengths(op: str, what: str, tensor: torch.Tensor, batch: int) -> torch.Tensor:
    values = as_index(op, what, tensor).reshape(-1)
    if values.numel() != batch or (values < 0).any():
        raise fail(op, f"{what} must hold {batch} non-negative lengths, got shape {list(tensor.shape)}")
    return values


@register_op(PAD, inputs=4)
def pad(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Inputs ``[hidden [ntokens, h], paddingOffset, seqLen [batch, 1], inputIds [batch, maxSeq]]``:
    for each batch the hidden row of its last token (zeros for an empty sequence)."""
    hidden, _, seq_len, input_ids = inputs
    if hidden.dim() != 2 or input_ids.dim() != 2:
        raise fail(PAD, f"hidden {list(hidden.shape)} and inputIds {list(input_ids.shape)} must be 2-D")
    lengths = _lengths(PAD, "seqLen", seq_len, input_ids.shape[0])
    ends = torch.cumsum(lengths, 0)
    if int(ends[-1]) > hidden.shape[0]:
        raise fail(PAD, f"seqLen sums to {int(ends[-1])}, but hidden holds {hidden.shape[0]} tokens")
    rows = hidden[(ends - 1).clamp(min=0)]
    return [torch.where((lengths > 0).unsqueeze(1), rows, torch.zeros_like(rows))]


@register_op(UNPAD, inputs=4)
def unpad(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
    """Inputs ``[inputIds [batch, total], cumOffsets [batch, 1], tokenNum [1, 1], seqLen [batch, 1]]``
    → ``[tokens int64 [1, batch*total], cumOffsets shifted int32 [batch, 1], paddingOffset int32
    [1, batch*total]]`` (the valid tokens packed, zero padded)."""
    input_ids, cum_offsets, token_num, seq_len = inputs
    if input_ids.dim() != 2:
        raise fail(UNPAD, f"inputIds must be [batch, total], got {list(input_ids.shape)}")
    batch, total = input_ids.shape
    lengths = _lengths(UNPAD, "seqLen", seq_len, batch)
    offsets = as_index(UNPAD, "cumOffsets", cum_offsets).reshape(-1)
    if offsets.numel() != batch or (lengths > total).any():
        raise fail(UNPAD, f"cumOffsets needs {batch} values and seqLen values at most {total}")
    count = int(lengths.sum())
    if token_num.numel() != 1 or int(token_num.reshape(-1)[0]) != count:
        raise fail(UNPAD, f"tokenNum {token_num.reshape(-1).tolist()} differs from the seqLen sum {count}")
    valid = torch.arange(total).unsqueeze(0) < lengths.unsqueeze(1)
    packed = torch.zeros(batch * total, dtype=torch.int64)
    packed[:count] = as_index(UNPAD, "inputIds", input_ids)[valid]
    shifted = torch.cat((torch.zeros(1, dtype=torch.int64), offsets[:-1]))
    padding = torch.zeros(batch * total, dtype=torch.int32)
    padding[:count] = torch.repeat_interleave(shifted, lengths).to(torch.int32)
    return [packed.reshape(1, -1), shifted.to(torch.int32).reshape(batch, 1), padding.reshape(1, -1)]
