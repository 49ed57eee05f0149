"""The standards an operator precheck is judged by: msit's opcheck table and the project's default.

``msit_standard(dtype)``: msit-spec §6.4 (the ``msit`` profile): the share of elements whose relative
error is within the dtype's error level must reach the required pass rate.

``opcheck_standard(dtype, reference)``: ours, for an output of ``dtype`` judged against its float64
reference. Every element must be within ``rtol·|ref| + atol``, with ``rtol`` a few eps of the output
dtype (eps = 2**-mantissa bits: one to two units of last place per eps) and ``atol`` a few eps of
the tensor's root mean square (what cancellation in a float32 accumulation may lose), and the
relative Euclidean distance must stay within a few eps (``BOUNDS``, ``HALF_BOUNDS``).
Integer and bool outputs must be exact. docs/opcheck.md shows the measurements
(benchmarks/calibrate_opcheck.py) behind the numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..dtypes import dtype_facts, dtype_name
from ..standards import Standard, Threshold, Tolerance, get_standard

if TYPE_CHECKING:
    import torch

NAME = "opcheck"

BOUNDS = {"torch.float32": (16.0, 32.0, 8.0), "torch.float64": (16.0, 32.0, 8.0)}
"""dtype -> (rtol, atol over rms(ref), relative Euclidean distance), in eps of the output dtype.

Outputs computed in their own precision (float32, float64) carry the accumulation error of long
reductions (a float32 Linear over 1024..11008 inputs: up to 134 eps relative on single elements,
14 eps·rms absolute, RED 2.2 eps); narrower outputs, computed in float32 and rounded once or twice,
stay within 1 eps relative (``HALF_BOUNDS``)."""

HALF_BOUNDS = (2.0, 0.25, 1.0)
"""(rtol, atol, RED) in eps for bfloat16, float16 and float8 outputs (measured: at most 0.98 eps
relative, RED 0.30 eps; a small atol only, so that a 2.5% scale error fails element-wise too)."""


def msit_standard(dtype: Any) -> Standard:
    """msit's opcheck standard for an output of ``dtype`` (the ``msit`` profile)."""
    return get_standard("msit", dtype, dtype)


def opcheck_standard(dtype: Any, reference: torch.Tensor | None = None) -> Standard:
    """The project's default standard for an output of ``dtype`` against its float64 ``reference``
    (whose root mean square scales the absolute bound; without it the bound is relative only)."""
    name = dtype_name(dtype)
    facts = dtype_facts(name)
    source = f"opcheck default ({name})"
    if not facts.floating:
        return Standard(NAME, (Threshold("max_absolute_error", "<=", 0.0, source),))
    eps = facts.eps
    scale = _rms(reference) if reference is not None else 0.0
    rtol, atol, red = BOUNDS.get(name, HALF_BOUNDS)
    tolerance = Tolerance(rtol * eps, atol=atol * eps * scale)
    checks = (
        Threshold("tolerance_pass_rate", ">=", 1.0, source),
        Threshold("relative_euclidean_distance", "<=", red * eps, source),
    )
    return Standard(NAME, checks, tolerance=tolerance)


def _rms(reference: torch.Tensor) -> float:
    """Root mean square of the finite values (one norm pass; a masked pass only for non-finite data)."""
    import math

    import torch

    count = reference.numel()
    if count == 0:
        return 0.0
    values = reference.detach()
    norm = float(torch.linalg.vector_norm(values, dtype=torch.float64))
    if math.isfinite(norm):
        return norm / math.sqrt(count)
    finite = values[torch.isfinite(values)].to(torch.float64)
    return float(finite.pow(2).mean().sqrt()) if finite.numel() else 0.0
