"""Storage format codes of ATB and GE tensors (aclFormat); importable without torch."""

from __future__ import annotations

FORMAT_NAMES = {
    -1: "UNDEFINED",
    0: "NCHW",
    1: "NHWC",
    2: "ND",
    3: "NC1HWC0",
    4: "FRACTAL_Z",
    12: "NC1HWC0_C04",
    16: "HWCN",
    27: "NDHWC",
    29: "FRACTAL_NZ",
    30: "NCDHW",
    32: "NDC1HWC0",
    33: "FRACTAL_Z_3D",
    35: "NC",
    47: "NCL",
    49: "C1HWC0",
    255: "MAX",
}
"""Format codes shared by aclFormat (ATB ``format=``) and GE's OutputFormat for the codes listed."""

ND = 2
NC1HWC0 = 3
FRACTAL_NZ = 29
PLAIN_FORMATS = frozenset({0, 1, 2, 16, 27, 30, 35, 47})
"""Row-major host layouts (only the axis naming differs): the bytes need no conversion."""


def format_name(code: int) -> str:
    return FORMAT_NAMES.get(code, f"FORMAT_{code}")
