"""``assert_no_overflow``: fail a test when a tensor (or any tensor of a nested value) overflowed."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..assertions.precision import PrecisionError
from ..compare.metrics import as_tensor
from .finding import OverflowFinding, check_near
from .leaves import named_leaves
from .scanning import scan


class OverflowFailure(PrecisionError):
    """Values overflowed. ``findings`` holds what was flagged: ``(name, OverflowFinding)`` pairs from
    ``assert_no_overflow``, ``Detection`` objects from an ``OverflowGuard``."""

    def __init__(self, message: str, findings: list[Any]) -> None:
        AssertionError.__init__(self, message)
        self.result = None
        self.verdict = None
        self.findings = findings


def _is_leaf(value: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def assert_no_overflow(
    x: Any, *, saturation: bool = True, near: float | None = None
) -> dict[str, OverflowFinding]:
    """Raise ``OverflowFailure`` when ``x`` (a tensor, an array, or a nested tuple/list/dict or
    dataclass of them) holds NaN, ±Inf or, with ``saturation``, values at ± the dtype's largest
    finite value (integers: at their limits). With ``near`` (a fraction in (0, 1]), values whose
    magnitude reaches ``near`` × that value fail too. Returns the finding of every tensor, by name.
    """
    __tracebackhide__ = True
    near = check_near(near)
    leaves = named_leaves(x, "value", is_tensor=_is_leaf)
    if not leaves.tensors:
        raise TypeError(
            f"assert_no_overflow expects a tensor or a (nested) tuple/list/dict of tensors; "
            f"{type(x).__name__} holds none"
        )
    findings: dict[str, OverflowFinding] = {}
    for name, value in leaves.tensors:
        tensor = value if isinstance(value, torch.Tensor) else as_tensor(value, name)
        try:
            findings[name] = scan(tensor, near=near, saturation=saturation)
        except (TypeError, ValueError) as error:
            raise ValueError(f"assert_no_overflow: {name} cannot be scanned: {error}") from None
    flagged = [(name, f) for name, f in findings.items() if f.flagged(near=near is not None)]
    if flagged:
        raise OverflowFailure(_message(flagged, len(findings), near), flagged)
    return findings


def _message(flagged: list[tuple[str, OverflowFinding]], total: int, near: float | None) -> str:
    overflowed = sum(1 for _, finding in flagged if finding.overflowed)
    what = f"{overflowed} of {total} tensors overflowed" if overflowed else ""
    close = len(flagged) - overflowed
    if close:
        what = ", ".join(filter(None, [what, f"{close} of {total} came near overflow (near={near:g})"]))
    lines = [f"assert_no_overflow: {what}"]
    lines += [f"  {name}: {finding.describe()}" for name, finding in flagged]
    return "\n".join(lines)
