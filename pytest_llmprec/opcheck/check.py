"""Checking one case: its reference from its own inputs, compared with the outputs it produced.

``case_reference(case, inputs=None, weights=None)`` computes a case's reference (from given
tensors or its dumped ones); ``check_case(case, ...)`` compares every output with it and judges
each by msit's opcheck standard and by the project's default (``standard.py``), reporting both;
the item's verdict is the default's unless a standard is chosen (``standard="msit"``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import DumpFormatError
from ..standards import Layer, Standard, Tolerance, Verdict, get_standard, judge
from .cases import OpCase, load_inputs, load_outputs, load_weights
from .registry import NotCheckable, OpcheckError, reference
from .standard import NAME as DEFAULT_NAME
from .standard import msit_standard, opcheck_standard

if TYPE_CHECKING:
    import torch

    from ..compare.results import CompareResult

PASSED, FAILED, ERROR, NOT_CHECKABLE = "passed", "failed", "error", "not checkable"
MSIT_SMALL = 2.0**-23
OPTIONAL_METRICS = ("abs", "cos_sim", "kl")

Kernel = Callable[..., Any]
"""``kernel(inputs, params, weights) -> output tensor(s)``: produces a case's actual outputs (on any
device) from its inputs (CPU tensors in their dumped dtypes; moved to ``device`` when one is given)."""


@dataclass
class OutputCheck:
    """One output compared with its reference, by the deciding standard and by msit's."""

    index: int
    result: CompareResult
    verdict: Verdict
    msit_result: CompareResult
    msit_verdict: Verdict
    abs_result: CompareResult | None = None
    message: str = ""


@dataclass
class CaseResult:
    """The outcome of one case: ``status`` (passed, failed, error, not checkable), every output's
    comparison, and the explanation (``message``) when it did not pass."""

    case: OpCase
    status: str
    outputs: list[OutputCheck] = field(default_factory=list)
    reason: str = ""
    message: str = ""
    standard: str = DEFAULT_NAME
    count_differs: bool = False
    reference_seconds: float = 0.0
    compare_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def case_reference(
    case: OpCase,
    inputs: Sequence[torch.Tensor] | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
) -> list[torch.Tensor]:
    """The reference outputs of ``case`` from ``inputs``/``weights`` (default: its dumped ones).

    ``dtype=torch.float64`` (the default, ``None`` meaning float64) returns them unrounded;
    ``dtype="operator"`` in the dtypes the operator produces. Raises ``NotCheckable`` for a case
    that cannot be checked and ``OpcheckError`` when the reference fails on these inputs.
    """
    import torch

    if case.problem is not None:
        raise (OpcheckError if case.bad_input else NotCheckable)(case.problem)
    inputs = load_inputs(case) if inputs is None else list(inputs)
    weights = load_weights(case) if weights is None else dict(weights)
    wanted = None if dtype == "operator" else torch.float64
    return reference(case.op_type, inputs, case.params, weights=weights, dtype=wanted)


def deciding_standard(dtype: Any, reference_output: torch.Tensor, layers: Sequence[Layer] = ()) -> Standard:
    """The standard that decides an output: the last layer naming a profile (``default``: the
    opcheck default, ``msit``: msit's table, others: that comparison profile), then every layer's
    thresholds and tolerance in order."""
    profile: str | Standard = "default"
    for layer in layers:
        if layer.profile is not None:
            profile = layer.profile
    if isinstance(profile, Standard):
        standard = profile
    elif profile in ("default", DEFAULT_NAME):
        standard = opcheck_standard(dtype, reference_output)
    elif profile == "msit":
        standard = msit_standard(dtype)
    else:
        standard = get_standard(profile, "torch.float64", dtype)
    for layer in layers:
        standard = standard.with_thresholds(layer.thresholds)
        if layer.tolerance is not None:
            standard = replace(standard, tolerance=layer.tolerance)
    return standard


def check_case(
    case: OpCase,
    actual: Sequence[torch.Tensor] | Kernel | None = None,
    *,
    layers: Sequence[Layer] = (),
    metrics: Sequence[str] = OPTIONAL_METRICS,
    device: Any = None,
) -> CaseResult:
    """Check ``case``: reference from its dumped inputs vs ``actual`` outputs (default: the dumped
    ones; a list of tensors; or a ``Kernel`` run on the inputs, on ``device`` when given).

    ``layers`` choose and override the deciding standard (``deciding_standard``); ``metrics``
    adds msit's optional figures (``abs``: the absolute pass rate, needing one more pass).
    Never raises for bad input: an unreadable file, a failing reference or kernel give an
    ``error`` result naming the cause.
    """
    if case.problem is not None:
        status = ERROR if case.bad_input else NOT_CHECKABLE
        return CaseResult(case, status, reason=case.problem, message=case.problem)
    started = time.perf_counter()
    try:
        inputs, weights = load_inputs(case), load_weights(case)
        references = case_reference(case, inputs, weights)
    except NotCheckable as exc:
        return CaseResult(case, NOT_CHECKABLE, reason=str(exc), message=str(exc))
    except (OpcheckError, DumpFormatError, OSError) as exc:
        return _error(case, f"cannot compute the reference: {exc}")
    reference_seconds = time.perf_counter() - started
    try:
        outputs = _actual(case, actual, inputs, weights, device)
    except (DumpFormatError, OSError) as exc:
        return _error(case, f"cannot read the outputs: {exc}")
    except Exception as exc:  # a user's kernel may raise anything; the session goes on
        return _error(case, f"the kernel raised {type(exc).__name__}: {exc}")
    result = check_outputs(case, references, outputs, layers=layers, metrics=metrics)
    result.reference_seconds = reference_seconds
    return result


def check_outputs(
    case: OpCase,
    references: Sequence[torch.Tensor],
    outputs: Sequence[torch.Tensor],
    *,
    layers: Sequence[Layer] = (),
    metrics: Sequence[str] = OPTIONAL_METRICS,
) -> CaseResult:
    """Compare ``outputs`` with ``references`` (float64) output by output and judge the case."""
    started = time.perf_counter()
    checks = [
        _check_output(case, j, ref, out, layers, metrics)
        for j, (ref, out) in enumerate(zip(references, outputs, strict=False))
    ]
    result = CaseResult(case, PASSED, checks)
    result.compare_seconds = time.perf_counter() - started
    if checks:
        result.standard = checks[0].verdict.standard.name
    problems = []
    if len(outputs) != len(references):
        result.count_differs = True
        problems.append(f"{len(outputs)} outputs for {len(references)} reference outputs")
    failed = [check for check in checks if not check.verdict.passed]
    if failed or problems:
        result.status = FAILED
        result.reason = "; ".join(problems + [f"output {c.index}: {c.verdict.summary()}" for c in failed])
        result.message = "\n".join(problems + [check.message for check in failed])
    return result


def _error(case: OpCase, reason: str) -> CaseResult:
    return CaseResult(case, ERROR, reason=reason, message=f"opcheck {case.case_id}: {reason}")


def _actual(
    case: OpCase,
    actual: Sequence[Any] | Kernel | None,
    inputs: list[torch.Tensor],
    weights: dict[str, torch.Tensor],
    device: Any,
) -> list[torch.Tensor]:
    import torch

    if actual is None:
        return load_outputs(case)
    if not callable(actual):
        return list(actual)
    if device is not None:
        inputs = [tensor.to(device) for tensor in inputs]
        weights = {name: tensor.to(device) for name, tensor in weights.items()}
    produced = actual(inputs, dict(case.params), weights)
    return [produced] if isinstance(produced, torch.Tensor) else list(produced)


def _check_output(
    case: OpCase,
    index: int,
    ref: torch.Tensor,
    out: torch.Tensor,
    layers: Sequence[Layer],
    metrics: Sequence[str],
) -> OutputCheck:
    from ..assertions.checks import failure_message
    from ..compare.metrics import compare_tensors

    msit = msit_standard(out.dtype)
    msit_result = compare_tensors(ref, out, tolerance=msit.tolerance)
    standard = deciding_standard(out.dtype, ref, layers)
    if standard.tolerance == msit.tolerance:
        result = msit_result
    else:
        result = compare_tensors(ref, out, tolerance=standard.tolerance)
    verdict = judge(result, standard)
    check = OutputCheck(index, result, verdict, msit_result, judge(msit_result, msit))
    if "abs" in metrics and msit.tolerance is not None:
        absolute = Tolerance(0.0, atol=msit.tolerance.rtol, small=MSIT_SMALL)
        check.abs_result = compare_tensors(ref, out, tolerance=absolute)
    if not verdict.passed:
        what = f"opcheck {case.case_id} ({case.op_type}) output {index}"
        lines = [failure_message(what, ref, out, result, verdict)]
        lines.append(f"  msit opcheck standard: {msit_line(check)}")
        if case.path:
            lines.append(f"  operator folder: {case.path}")
        check.message = "\n".join(lines)
    return check


def msit_line(check: OutputCheck) -> str:
    """msit's verdict of one output, as its report states it."""
    rate = 100.0 * check.msit_result.tolerance_pass_rate
    required = msit_pass_rate(check.msit_verdict.standard)
    if check.msit_verdict.passed:
        return f"PASS (relative pass rate {rate:.4f}% >= {required:g}%)"
    return f"FAILED (relative pass rate: {rate:.4f} not met standard: {required:g}.)"


def msit_pass_rate(standard: Standard) -> float:
    """The required relative pass rate (%) of an msit standard."""
    for check in standard.checks:
        if getattr(check, "metric", "") == "tolerance_pass_rate":
            return 100.0 * check.value
    return float("nan")
