"""Precision standards for a pair of dtypes: per-dtype defaults and the named profiles.

Profiles (``default``, ``strict``, ``msit``, ``msprobe``) build a ``Standard`` for a golden/my
pair of dtypes; ``resolve_standard`` then applies override layers in increasing precedence
(ini rule < marker < command line < call argument), and every threshold remembers where it came
from. docs/standards.md documents the tables and how the defaults were chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..dtypes import coarser_dtype, dtype_facts, dtype_name, msit_error_level
from .names import PROFILE_NAMES
from .thresholds import AnyOf, Check, Layer, Standard, Threshold, Tolerance

# --- profiles ------------------------------------------------------------------------------------

_DEFAULT = {
    "torch.float64": (0.9999999, 1e-6),
    "torch.float32": (0.99999, 1e-3),
    "torch.float16": (0.999, 1e-2),
    "torch.bfloat16": (0.995, 5e-2),
    "torch.float8_e4m3fn": (0.98, 0.15),
    "torch.float8_e4m3fnuz": (0.98, 0.15),
    "torch.float8_e5m2": (0.95, 0.3),
    "torch.float8_e5m2fnuz": (0.95, 0.3),
}
"""Our per-dtype (min cosine, max relative Euclidean distance); see docs/standards.md for the data."""

_STRICT = {
    "torch.float64": (1 - 1e-10, 1e-8),
    "torch.float32": (0.999999, 1e-4),
    "torch.float16": (0.9999, 2e-3),
    "torch.bfloat16": (0.999, 1e-2),
    "torch.float8_e4m3fn": (0.99, 0.08),
    "torch.float8_e4m3fnuz": (0.99, 0.08),
    "torch.float8_e5m2": (0.98, 0.15),
    "torch.float8_e5m2fnuz": (0.98, 0.15),
}

_MSIT_PASS_RATES = {
    "torch.float32": 0.9999,
    "torch.float16": 0.999,
    "torch.bfloat16": 0.999,
    "torch.float64": 0.9999,
    "torch.int32": 0.9999,
    "torch.int64": 0.9999,
    "torch.uint32": 0.9999,
    "torch.uint64": 0.9999,
    "torch.int8": 0.999,
    "torch.int16": 0.999,
    "torch.uint16": 0.999,
    "torch.uint8": 0.99,
    "torch.bool": 1.0,
}
"""msit opcheck's required share of elements within the error level (msit-spec §6.4), ``>=``."""

_MSPROBE_TIERS = {
    "torch.float16": (0.01, 2.0**-10),
    "torch.bfloat16": (0.01, 2.0**-8),
    "torch.float32": (0.001, 2.0**-23),
    "torch.float64": (0.001, 2.0**-52),
}
"""msprobe's legacy run_ut tier (msprobe-spec §4.3/§4.5): share of RE < rtol must exceed 1 - rtol,
with RE = |my - golden| / (|golden| + eps); dtype -> (rtol, eps)."""


DEFAULT_SOURCE = "dtype default"
"""How the default profile's thresholds name their source (``dtype default (torch.bfloat16)``)."""


def _exact(source: str) -> Standard:
    return Standard("exact", (Threshold("max_absolute_error", "<=", 0.0, source),))


def _cos_red(name: str, table: Mapping[str, tuple[float, float]], dtype: str, source: str) -> Standard:
    if dtype not in table:
        if dtype_facts(dtype).floating:
            raise ValueError(f"profile {name!r} has no thresholds for {dtype}")
        return replace(_exact(source), name=name)
    min_cos, max_red = table[dtype]
    return Standard(
        name,
        (
            Threshold("cosine_similarity", ">=", min_cos, source),
            Threshold("relative_euclidean_distance", "<=", max_red, source),
        ),
    )


def _default_profile(golden: str, my: str) -> Standard:
    dtype = coarser_dtype(golden, my)
    return _cos_red("default", _DEFAULT, dtype, f"{DEFAULT_SOURCE} ({dtype})")


def _strict_profile(golden: str, my: str) -> Standard:
    dtype = coarser_dtype(golden, my)
    standard = _cos_red("strict", _STRICT, dtype, f"profile 'strict' ({dtype})")
    return replace(standard, require_finite=True)


def _msit_profile(golden: str, my: str) -> Standard:
    rate = _MSIT_PASS_RATES.get(my, 0.999)
    source = f"profile 'msit' ({my})"
    return Standard(
        "msit",
        (Threshold("tolerance_pass_rate", ">=", rate, source),),
        tolerance=Tolerance(msit_error_level(my), small=2.0**-23),
    )


def _msprobe_profile(golden: str, my: str) -> Standard:
    source = "profile 'msprobe'"
    if not dtype_facts(golden).floating and not dtype_facts(my).floating:
        return replace(_exact(source), name="msprobe")
    checks: list[Check] = [
        AnyOf(
            (
                Threshold("cosine_similarity", ">=", 0.99, source),
                Threshold("max_absolute_error", "<=", 0.001, source),
            )
        ),
        Threshold("cosine_similarity", ">=", 0.9, source),
        Threshold("max_absolute_error", "<=", 1.0, source),
    ]
    tier = _MSPROBE_TIERS.get(golden) or _MSPROBE_TIERS.get(my)
    tolerance = None
    if tier is not None:
        rtol, eps = tier
        checks.append(Threshold("tolerance_pass_rate", ">", 1 - rtol, f"{source} ({golden})"))
        tolerance = Tolerance(rtol, atol=rtol * eps)
    return Standard("msprobe", tuple(checks), tolerance=tolerance)


PROFILES: dict[str, Callable[[str, str], Standard]] = dict(
    zip(PROFILE_NAMES, (_default_profile, _strict_profile, _msit_profile, _msprobe_profile), strict=True)
)
"""Profile name -> the standard it gives a (golden, my) pair of dtype names."""


def get_standard(
    profile: str = "default", golden_dtype: Any = "torch.float32", my_dtype: Any = None
) -> Standard:
    """The standard a named profile applies to a golden/my dtype pair (``torch.dtype`` or name)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown precision standard {profile!r}; choose one of {', '.join(PROFILES)}")
    golden = dtype_name(golden_dtype)
    return PROFILES[profile](golden, golden if my_dtype is None else dtype_name(my_dtype))


# --- resolution -------------------------------------------------------------------------------------


def resolve_standard(golden_dtype: Any, my_dtype: Any, layers: Sequence[Layer] = ()) -> Standard:
    """The standard for a pair of dtypes under ``layers`` given in increasing precedence.

    The profile is the one named by the highest layer that names one (else ``default``);
    thresholds then override the profile's checks layer by layer.
    """
    profile: str | Standard = "default"
    for layer in layers:
        if layer.profile is not None:
            profile = layer.profile
    standard = profile if isinstance(profile, Standard) else get_standard(profile, golden_dtype, my_dtype)
    for layer in layers:
        standard = standard.with_thresholds(layer.thresholds)
        if layer.tolerance is not None:
            standard = replace(standard, tolerance=layer.tolerance)
    return standard
