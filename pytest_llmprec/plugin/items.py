"""Test items for dump pairs: one per matched tensor pair, plus the unmatched gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..errors import LlmprecError
from ..pipeline.granularity import PairGroup, group_name, group_pairs

if TYPE_CHECKING:
    from .hooks import LlmPlugin

ID_PREFIX = "llm"
PROPERTIES = ("cosine_similarity", "relative_euclidean_distance", "max_absolute_error", "kl_divergence")
LOGITS_PROPERTIES = ("cosine_similarity", "kl_divergence", "l1_norm", "passed", "token_verdict")
UNMATCHED_LISTED = 20
GROUP_DETAILED = 20
"""Failing tensors of a group item shown with their full message."""


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
    """Compares a group of golden/my pairs (one pair in ``tensor`` mode) and records their rows."""

    def __init__(self, *, group: PairGroup, plugin: LlmPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.pairs = group.pairs
        self.plugin = plugin
        self.llmprec_rows: list[dict[str, Any]] | None = None

    def runtest(self) -> None:
        from .hooks import marker_layer, marker_verdict

        comparison, marker = self.plugin.comparison(), marker_layer(self)
        if self.plugin.settings.item == "tensor":
            done = comparison.evaluation(self.pairs[0], marker, marker_verdict(self))
            self.llmprec_rows = [done.row]
            row = done.row
            if "cosine_similarity" in row:  # compared (an unreadable pair's row has no metrics)
                self.user_properties += [(name, row[name]) for name in PROPERTIES]
                self.user_properties.append(("verdict", row["verdict"]))
            if done.message is not None:
                raise ComparisonFailure(done.message)
            return
        evaluated = list(comparison.evaluated(self.pairs, marker))
        self.llmprec_rows = [done.row for done in evaluated]
        failing = [done for done in evaluated if done.message is not None]
        self.user_properties += [("pairs", len(evaluated)), ("failed", len(failing))]
        if failing:
            raise ComparisonFailure(group_message(self.group.name, len(evaluated), failing))


def group_message(name: str, count: int, failing: list) -> str:
    """The failure of a group item: how many of its tensors failed, then each failing tensor's
    message in execution order (the first divergence inside the group first); after
    ``GROUP_DETAILED`` of them, only their keys."""
    failing = sorted(failing, key=lambda done: done.pair.order)
    lines = [f"{len(failing)} of {count} tensors failed in {name} (first divergence first):"]
    for done in failing[:GROUP_DETAILED]:
        lines.append(done.message)
    rest = failing[GROUP_DETAILED:]
    if rest:
        lines.append(f"... and {len(rest)} more failing tensors (see the report):")
        lines += [f"  {done.pair.key}" for done in rest]
    return "\n".join(lines)


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
        self.llmprec_rows: list[dict[str, Any]] | None = None
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


def planned_pairs(items: list[pytest.Item], granularity: str) -> list:
    """The pairs the comparison items will evaluate with the run's own settings (no
    ``llm_precision`` marker), in the items' order: what the evaluation process evaluates."""
    from .hooks import marker_layer, marker_verdict

    pairs = []
    for item in items:
        if not isinstance(item, PairItem):
            continue
        try:
            if marker_layer(item) is not None or marker_verdict(item) is not None:
                continue
        except LlmprecError:  # the item fails when it runs
            continue
        pairs += item.pairs[:1] if granularity == "tensor" else item.pairs
    return pairs


def comparison_items(session: pytest.Session, plugin: LlmPlugin) -> list[pytest.Item]:
    """The items of a ``--llm-golden``/``--llm-my`` session, in execution order."""
    match = plugin.matched_pairs()
    logits = plugin.comparison().logits()
    if logits is not None:
        return [
            LogitsItem.from_parent(session, name=p.key, nodeid=p.key, pair=p, plugin=plugin)
            for p in logits.pairs
        ]
    golden = plugin.comparison().dump("golden")
    folder_nodes = golden is not None and golden.kind == "files"
    groups = group_pairs(match.pairs, plugin.settings.item, folder_nodes)
    mark = pytest.mark.llm_compare
    coarse = plugin.settings.item != "tensor"
    config = session.config
    # a worker judges every pair of a token it takes under the local verdict: one worker a token
    by_token = plugin.settings.item == "token" or plugin.settings.judges_locally
    # --dist loadgroup schedules by the "@group" suffix of node ids, which pytest-xdist adds for
    # xdist_group marks; it is written here directly (pytest 9.2 ignores xdist's rewrite of ids)
    load_group = getattr(config.option, "loadgroup", False) or config.getoption("dist", None) == "loadgroup"
    items: list[pytest.Item] = []
    for group in groups:
        name = nodeid = f"{ID_PREFIX}/{group.name}"
        if load_group:  # a worker takes a whole token (or layer) and reads neighbouring files
            nodeid += "@" + group_name(group.pairs[0], "token" if by_token else "layer", folder_nodes)
        item = PairItem.from_parent(session, name=name, nodeid=nodeid, group=group, plugin=plugin)
        item.add_marker(mark)
        if coarse:  # -k selects a group by the names of its nodes
            item.extra_keyword_matches.update(group.nodes)
        items.append(item)
    if plugin.settings.fail_on_unmatched and match.unmatched:
        name = f"{ID_PREFIX}/unmatched"
        items.append(UnmatchedItem.from_parent(session, name=name, nodeid=name, plugin=plugin))
    return items
