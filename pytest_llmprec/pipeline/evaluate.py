"""One pair: read both tensors, compare, judge, check the baseline, build the report row and the
failure message. Pure functions of the pair and its standard; ``Comparison`` supplies both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..assertions.checks import PrecisionError, check_precision
from ..compare.dispatch import raw_comparable
from ..errors import DumpFormatError
from ..overflow.compare_columns import result_overflow_columns
from ..report.rows import comparison_row, error_row

if TYPE_CHECKING:
    from ..compare.results import CompareResult
    from ..matching import Pair
    from ..report.baseline import Baseline
    from ..standards import Standard, Verdict


@dataclass(slots=True)
class EvaluatedPair:
    """A compared pair: its result and verdict (None when it could not be compared, or was evaluated
    in the evaluation process, which sends back only the row and the message), baseline regressions,
    the failure message (None when it passed) and its report ``row``.

    The row of a compared pair is built from the others when first asked for: the evaluations of a
    token held for its local verdict need none until then (a row is about half of a held pair)."""

    pair: Pair
    result: CompareResult | None = None
    verdict: Verdict | None = None
    regressions: list[str] = field(default_factory=list)
    message: str | None = None
    _row: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.message is None

    @property
    def row(self) -> dict[str, Any]:
        if self._row is None:
            pair, result = self.pair, self.result
            row = comparison_row(
                pair.key, pair.order, pair.token, pair.golden, pair.my, result, self.verdict, self.regressions
            )
            row.update(result_overflow_columns(result))
            self._row = row
        return self._row


def read_pair(pair: Pair) -> tuple[Any, Any]:
    """Both tensors of ``pair``: raw reads (no torch) when both files allow one in the same element
    order and the C kernel is built, else torch tensors. Raises the reader's ``DumpFormatError``
    (or ``OSError``)."""
    golden, my = pair.golden.load_raw(), pair.my.load_raw()
    if not raw_comparable(golden, my):
        golden, my = pair.golden.load(), pair.my.load()
    return golden, my


def evaluate_pair(
    pair: Pair,
    standard_for: Callable[[Any, Any], Standard],
    baseline: Baseline | None = None,
    baseline_name: str = "baseline",
) -> EvaluatedPair:
    """Read, compare and judge ``pair`` with ``standard_for(golden_dtype, my_dtype)``; a file that
    cannot be read or compared gives an error row and a message naming it, never an exception."""
    try:
        golden, my = read_pair(pair)
    except (DumpFormatError, OSError) as exc:
        return _error(pair, "cannot read", exc)
    try:
        standard = standard_for(
            pair.golden.original_dtype or golden.dtype, pair.my.original_dtype or my.dtype
        )
        result, verdict = check_precision(golden, my, standard, f"pair {pair.key}")
        message = None
    except PrecisionError as failure:
        result, verdict, message = failure.result, failure.verdict, str(failure)
    except (TypeError, ValueError) as exc:  # e.g. complex tensors, a dtype no standard covers
        return _error(pair, "cannot compare", exc)
    regressions = baseline.check(pair.key, result) if baseline is not None else []
    if regressions:
        lines = [message or f"pair {pair.key} regressed against the {baseline_name}"]
        lines += [f"  FAILED {reason}" for reason in regressions]
        message = "\n".join(lines)
    if message is not None:
        message += f"\n  golden: {pair.golden.describe()}\n  my:     {pair.my.describe()}"
    return EvaluatedPair(pair, result, verdict, regressions, message)


def _error(pair: Pair, what: str, exc: Exception) -> EvaluatedPair:
    row = error_row(pair.key, pair.order, pair.token, pair.golden, pair.my, str(exc))
    return EvaluatedPair(pair, message=f"{what} pair {pair.key}: {exc}", _row=row)
