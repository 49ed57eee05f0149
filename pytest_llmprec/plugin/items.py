"""Test items for dump pairs: one per matched tensor pair, plus the unmatched gate."""

from __future__ import annotations

from typing import Any

import pytest

from ..assertions.messages import failure_message
from ..errors import DumpFormatError
from ..matching import Pair
from ..report.rows import comparison_row, error_row
from ..standards import judge
from .session import LlmSession

ID_PREFIX = "llm"
PROPERTIES = ("cosine_similarity", "relative_euclidean_distance", "max_absolute_error", "kl_divergence")
UNMATCHED_LISTED = 20


class ComparisonFailure(Exception):
    """A pair that failed its standard, regressed or could not be read; the message says which."""


class _LlmItem(pytest.Item):
    llm: LlmSession

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(ComparisonFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        # no domain: pytest would print one that ends the node id with each "." shown as "::"
        return self.path, None, ""


class PairItem(_LlmItem):
    """Compares one golden/my pair and records its report row."""

    def __init__(self, *, pair: Pair, llm: LlmSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pair = pair
        self.llm = llm
        self.add_marker("llm_compare")

    def runtest(self) -> None:
        pair = self.pair
        try:
            done = self.llm.evaluation(pair, self.get_closest_marker("llm_precision"))
        except (DumpFormatError, OSError) as exc:
            self.llmprec_rows = [error_row(pair.key, pair.order, pair.token, pair.golden, pair.my, str(exc))]
            raise ComparisonFailure(f"cannot read pair {pair.key}: {exc}") from None
        result = done.result
        verdict = judge(result, done.standard)
        regressions = self.llm.baseline.check(pair.key, result) if self.llm.baseline else []
        row = comparison_row(
            pair.key, pair.order, pair.token, pair.golden, pair.my, result, verdict, regressions
        )
        self.llmprec_rows = [row]
        self.user_properties += [(name, row[name]) for name in PROPERTIES] + [("verdict", row["verdict"])]
        if verdict.passed and not regressions:
            return
        what = f"pair {pair.key}"
        lines = (
            [failure_message(what, done.golden, done.my, result, verdict)]
            if not verdict.passed
            else [f"{what} regressed against the baseline {self.llm.settings.baseline}"]
        )
        lines += [f"  FAILED {reason}" for reason in regressions]
        lines += [f"  golden: {pair.golden.describe()}", f"  my:     {pair.my.describe()}"]
        raise ComparisonFailure("\n".join(lines))


class UnmatchedItem(_LlmItem):
    """Fails when tensors of either dump have no partner (only with --llm-fail-on-unmatched)."""

    def __init__(self, *, llm: LlmSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = llm

    def runtest(self) -> None:
        unmatched = self.llm.match().unmatched
        lines = [f"{len(unmatched)} tensors have no partner (--llm-fail-on-unmatched):"]
        lines += [
            f"  {u.side}: token {u.record.token} {u.record.node} {u.record.leaf}: {u.reason}"
            for u in unmatched[:UNMATCHED_LISTED]
        ]
        if len(unmatched) > UNMATCHED_LISTED:
            lines.append(f"  ... and {len(unmatched) - UNMATCHED_LISTED} more (see the unmatched report)")
        raise ComparisonFailure("\n".join(lines))


def comparison_items(session: pytest.Session, llm: LlmSession) -> list[pytest.Item]:
    """The items of a ``--llm-golden``/``--llm-my`` session, in execution order."""
    if not llm.settings.compares_dumps:
        return []
    match = llm.match()
    items: list[pytest.Item] = [
        PairItem.from_parent(
            session, name=f"{ID_PREFIX}/{p.key}", nodeid=f"{ID_PREFIX}/{p.key}", pair=p, llm=llm
        )
        for p in match.pairs
    ]
    if llm.settings.fail_on_unmatched and match.unmatched:
        name = f"{ID_PREFIX}/unmatched"
        items.append(UnmatchedItem.from_parent(session, name=name, nodeid=name, llm=llm))
    return items
