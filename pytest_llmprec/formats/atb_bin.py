"""ATB tensor ``.bin`` payloads as torch tensors: read (memory-mapped) and write.

The header format and the statistics-only variant are read by ``atb_header``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..errors import DumpFormatError
from . import device_layouts, layout_codes
from ._files import PathLike
from ._payloads import map_bytes, pack_int4, tensor_bytes, unpack_int4, view_as
from .atb_header import DTYPE_NAMES, INT4, payload_bytes, read_layout

DTYPES: dict[int, torch.dtype] = {
    code: getattr(torch, name.removeprefix("torch.")) for code, name in DTYPE_NAMES.items()
}
"""aclDataType code -> torch dtype of the loaded tensor (int4 is unpacked to int8)."""

DTYPE_CODES = {dtype: code for code, dtype in DTYPES.items() if code != INT4}


@dataclass(frozen=True)
class AtbTensor:
    """An ATB tensor file: the tensor and the header metadata.

    ``dims`` are the dims the file declares (the storage shape for device formats);
    ``tensor`` has those dims unless an ``original_shape`` was given for a device format.
    """

    tensor: torch.Tensor
    dtype_code: int
    format_code: int
    dims: tuple[int, ...]
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def format_name(self) -> str:
        return layout_codes.format_name(self.format_code)


def read_atb_bin(path: PathLike, *, original_shape: Sequence[int] | None = None) -> AtbTensor:
    """Read an ATB tensor file; the payload is memory-mapped, not copied (int4 is unpacked to int8).

    With ``original_shape``, a FRACTAL_NZ (29) or NC1HWC0 (3) tensor is converted to that
    host shape (ND / NCHW); other formats ignore it.
    """
    layout = read_layout(path)
    raw = map_bytes(path, layout.header.length, payload_bytes(layout.dtype_code, layout.dims))
    if layout.dtype_code == INT4:
        tensor = unpack_int4(raw, layout.dims)
    else:
        tensor = view_as(raw, DTYPES[layout.dtype_code], layout.dims)
    convert = device_layouts.TO_HOST.get(layout.format_code)
    if original_shape is not None and convert is not None:
        try:
            tensor = convert(tensor, tuple(original_shape))
        except ValueError as exc:
            raise DumpFormatError(path, str(exc)) from None
    return AtbTensor(
        tensor, layout.dtype_code, layout.format_code, layout.dims, dict(layout.header.attributes)
    )


def save_atb_bin(
    tensor: torch.Tensor,
    path: PathLike,
    *,
    format: int = layout_codes.ND,
    length_in: str = "bytes",
    dtype_code: int | None = None,
) -> None:
    """Write ``tensor`` as an ATB ``.bin`` with the full header ATB dumps produce.

    ``format`` is recorded as given (the tensor is written as is: convert it to the device
    layout first if needed). ``length_in`` is ``"bytes"`` (as ATB writes) or ``"elements"``
    (as some fixtures do) for ``$Object.Length`` and ``$Object.data``. ``dtype_code`` defaults
    to the code of ``tensor.dtype``; pass 29 to pack an integer tensor in [-8, 7] as int4.
    """
    if length_in not in ("bytes", "elements"):
        raise ValueError(f"length_in must be 'bytes' or 'elements', not {length_in!r}")
    if dtype_code is None:
        if tensor.dtype not in DTYPE_CODES:
            raise ValueError(f"no aclDataType code for {tensor.dtype}")
        dtype_code = DTYPE_CODES[tensor.dtype]
    if dtype_code == INT4:
        payload = pack_int4(tensor)
    elif DTYPES.get(dtype_code) == tensor.dtype:
        payload = tensor_bytes(tensor)
    else:
        raise ValueError(f"dtype code {dtype_code} does not match tensor dtype {tensor.dtype}")
    length = len(payload) if length_in == "bytes" else tensor.numel()
    header = (
        f"$Version=1.0\n$Object.Count=1\n$Object.Length={length}\nformat={format}\ndtype={dtype_code}\n"
        f"dims={','.join(str(d) for d in tensor.shape)}\n$Object.data=0,{length}\n$End=1\n"
    )
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(payload)
