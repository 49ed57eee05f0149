"""Test items for dump pairs: one per matched tensor pair, plus the unmatched gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..matching import Pair

if TYPE_CHECKING:
    from .hooks import LlmPlugin

ID_PREFIX = "llm"
PROPERTIES = ("cosine_similarity", "relative_euclidean_distance", "max_absolute_error", "kl_divergence")
LOGITS_PROPERTIES = ("cosine_similarity", "kl_divergence", "l1_norm", "passed", "token_verdict")
UNMATCHED_LISTED = 20


class ComparisonFailure(Exception):
    """A pair that failed its standard, regressed or could not be read; the message says which."""


class _LlmItem(pytest.Item):
    plugin: LlmPlugin

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(ComparisonFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        # no domain: pytest would print one that ends the node id with each "." shown as "::"
        return self.path, None, ""


class PairItem(_LlmItem):
    """Compares one golden/my pair and records its report row."""

    def __init__(self, *, pair: Pair, plugin: LlmPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pair = pair
        self.plugin = plugin
        self.add_marker("llm_compare")

    def runtest(self) -> None:
        from .hooks import marker_layer, marker_verdict

        done = self.plugin.comparison().evaluation(self.pair, marker_layer(self), marker_verdict(self))
        self.llmprec_rows = [done.row]
        if done.result is not None:
            row = done.row
            self.user_properties += [(name, row[name]) for name in PROPERTIES] + [("verdict", row["verdict"])]
        if done.message is not None:
            raise ComparisonFailure(done.message)


class UnmatchedItem(_LlmItem):
    """Fails when tensors of either dump have no partner (only with --llm-fail-on-unmatched)."""

    def __init__(self, *, plugin: LlmPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plugin = plugin

    def runtest(self) -> None:
        unmatched = self.plugin.matched_pairs().unmatched
        lines = [f"{len(unmatched)} tensors have no partner (--llm-fail-on-unmatched):"]
        lines += [
            f"  {u.side}: token {u.record.token} {u.record.node} {u.record.leaf}: {u.reason}"
            for u in unmatched[:UNMATCHED_LISTED]
        ]
        if len(unmatched) > UNMATCHED_LISTED:
            lines.append(f"  ... and {len(unmatched) - UNMATCHED_LISTED} more (see the unmatched report)")
        raise ComparisonFailure("\n".join(lines))


class LogitsItem(_LlmItem):
    """One token of one case of two logits dumps: fails on a real top-1 flip, on msit's rule, on a
    file that cannot be compared or is on one side only; skipped when it fails after a near-tie
    flip of its case (the runs then continue from different tokens)."""

    def __init__(self, *, pair: Any, plugin: LlmPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pair = pair
        self.plugin = plugin
        self.add_marker("llm_compare")

    def runtest(self) -> None:
        done = self.plugin.comparison().evaluation(self.pair)
        self.llmprec_rows = [done.row]
        row = done.row
        self.user_properties += [(name, row[name]) for name in LOGITS_PROPERTIES]
        if done.outcome == "skipped":
            pytest.skip(done.message)
        if done.outcome == "failed":
            raise ComparisonFailure(done.message)


def comparison_items(session: pytest.Session, plugin: LlmPlugin) -> list[pytest.Item]:
    """The items of a ``--llm-golden``/``--llm-my`` session, in execution order."""
    match = plugin.matched_pairs()
    logits = plugin.comparison().logits()
    if logits is not None:
        return [
            LogitsItem.from_parent(session, name=p.key, nodeid=p.key, pair=p, plugin=plugin)
            for p in logits.pairs
        ]
    items: list[pytest.Item] = [
        PairItem.from_parent(
            session, name=f"{ID_PREFIX}/{p.key}", nodeid=f"{ID_PREFIX}/{p.key}", pair=p, plugin=plugin
        )
        for p in match.pairs
    ]
    if plugin.settings.fail_on_unmatched and match.unmatched:
        name = f"{ID_PREFIX}/unmatched"
        items.append(UnmatchedItem.from_parent(session, name=name, nodeid=name, plugin=plugin))
    return items
