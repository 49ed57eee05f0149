"""The comparison session behind the plugin: dumps, pairs, standards, rows and reports.

One ``LlmSession`` lives on the pytest config. Every process (a serial run, each xdist
worker, the xdist controller) builds it from the same options; workers compare pairs and send
their report rows to the controller on the test reports; only the controller (or the serial
process) writes the report files and the terminal summary.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from ..dumps.base import Dump
from ..errors import DumpFormatError, LlmprecError
from ..matching import MatchOptions, MatchResult, NameMapping, Pair, match_dumps, parse_tokens
from ..report.baseline import Baseline, write_baseline
from ..report.csv_files import write_csv
from ..report.rows import COLUMNS, row_sort_key
from ..report.summary import summary_lines
from ..standards.thresholds import Layer, rule_layer
from .options import Settings

if TYPE_CHECKING:
    import torch

    from ..compare.results import CompareResult
    from ..formats.raw_tensor import RawTensor
    from ..standards import Standard

UNMATCHED_COLUMNS = ("side", "token_id", "node", "leaf", "node_type", "data_path", "reason")


@dataclass
class Evaluation:
    """A pair's tensors (torch tensors or raw reads), the standard that applies, and their comparison."""

    golden: torch.Tensor | RawTensor
    my: torch.Tensor | RawTensor
    standard: Standard
    result: CompareResult


class LlmSession:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.started = time.gmtime()
        self.rows: list[dict[str, Any]] = []
        self.report_paths: list[str] = []
        self._dumps: dict[str, Dump] = {}
        self._match: MatchResult | None = None
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="llmprec-ahead")
        self._prefetched: dict[str, Future] = {}
        try:
            self.tokens = parse_tokens(settings.tokens) if settings.tokens else None
            self.mapping = NameMapping.load(settings.mapping_file) if settings.mapping_file else None
        except (ValueError, LlmprecError) as exc:
            raise pytest.UsageError(str(exc)) from None
        self.baseline = self._load_baseline()
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
        if self.is_worker and workers > 1:  # share the cores between the workers' comparisons
            from ..compare.native import set_threads

            set_threads(max(1, (os.cpu_count() or 1) // workers))

    def _load_baseline(self) -> Baseline | None:
        path = self.settings.baseline
        if path is None or self.settings.update_baseline:
            return None
        if not path.is_file():
            raise pytest.UsageError(
                f"--llm-baseline={path}: no such file (create it with --llm-update-baseline)"
            )
        try:
            return Baseline.load(path, self.settings.baseline_tolerance)
        except LlmprecError as exc:
            raise pytest.UsageError(str(exc)) from None

    # --- dumps and pairs ------------------------------------------------------------------------

    def dump(self, side: str) -> Dump | None:
        """The golden or my dump, indexed once; None when its option is absent."""
        path = self.settings.golden if side == "golden" else self.settings.my
        if path is None:
            return None
        if side not in self._dumps:
            from ..dumps import load_dump

            try:
                self._dumps[side] = load_dump(path)
            except (DumpFormatError, OSError) as exc:
                raise pytest.UsageError(f"--llm-{side}={path}: {exc}") from None
        return self._dumps[side]

    def match(self) -> MatchResult:
        """The pairs of the two dumps (empty when either option is absent)."""
        if self._match is None:
            golden, my = self.dump("golden"), self.dump("my")
            if golden is None or my is None:
                self._match = MatchResult()
            else:
                options = MatchOptions(
                    self.tokens,
                    self.settings.select,
                    self.mapping,
                    level=self.settings.level,
                    op_mapping=self.settings.op_mapping,
                    mode=self.settings.match_mode,
                )
                try:
                    self._match = match_dumps(golden, my, options)
                except LlmprecError as exc:
                    raise pytest.UsageError(str(exc)) from None
        return self._match

    # --- standards ------------------------------------------------------------------------------

    def layers(self, name: str, marker: pytest.Mark | None, call: Layer | None = None) -> list[Layer]:
        """Override layers for ``name`` in increasing precedence: ini profile, ini rules, marker,
        command line, call."""
        layers = []
        if self.settings.ini_standard:
            layers.append(Layer("ini llm_standard", profile=self.settings.ini_standard))
        matched = rule_layer(self.settings.rules, name)
        if matched is not None:
            layers.append(matched)
        if marker is not None:
            options = dict(marker.kwargs)
            try:
                layers.append(
                    Layer.from_keywords(
                        "marker llm_precision", profile=options.pop("standard", None), **options
                    )
                )
            except ValueError as exc:
                raise LlmprecError(f"@pytest.mark.llm_precision: {exc}") from None
        layers.append(Layer("command line", self.settings.cli_standard, self.settings.cli_thresholds))
        if call is not None:
            layers.append(call)
        return layers

    def standard(self, name: str, golden_dtype, my_dtype, marker=None, call: Layer | None = None) -> Standard:
        from ..standards import resolve_standard

        return resolve_standard(golden_dtype, my_dtype, self.layers(name, marker, call))

    # --- comparing pairs --------------------------------------------------------------------------

    def evaluate(self, pair: Pair, marker: pytest.Mark | None) -> Evaluation:
        """Read and compare ``pair``; raises the reader's ``DumpFormatError`` (or ``OSError``).

        Files that ``formats.read_raw`` handles are compared without torch (see ``native``).
        """
        from ..compare import native

        golden, my = pair.golden.load_raw(), pair.my.load_raw()
        if golden is not None and my is not None and native.available():
            compare = native.compare_raw
        else:
            from ..compare.metrics import compare_tensors

            golden, my, compare = pair.golden.load(), pair.my.load(), compare_tensors
        standard = self.standard(pair.golden.node, golden.dtype, my.dtype, marker)
        return Evaluation(golden, my, standard, compare(golden, my, tolerance=standard.tolerance))

    def prefetch(self, pair: Pair, marker: pytest.Mark | None) -> None:
        """Start reading and comparing ``pair`` in the background (the next item's, while pytest
        reports the current one; the comparison kernel runs without the GIL).

        At most two pairs are held: the running item's and the next one's.
        """
        if pair.key in self._prefetched:
            return
        while len(self._prefetched) >= 2:
            self._prefetched.pop(next(iter(self._prefetched))).cancel()
        self._prefetched[pair.key] = self._ahead.submit(self.evaluate, pair, marker)

    def evaluation(self, pair: Pair, marker: pytest.Mark | None) -> Evaluation:
        """``pair``'s evaluation, from the background if it was started there."""
        future = self._prefetched.pop(pair.key, None)
        return future.result() if future is not None else self.evaluate(pair, marker)

    # --- rows and reports -----------------------------------------------------------------------

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        if not self.is_worker:
            self.rows.extend(rows)

    def write_reports(self) -> None:
        """Write the report files (controller or serial process only); safe to call once at the end."""
        if self.is_worker or not (self.settings.compares_dumps or self.rows):
            return
        stamp = time.strftime("%Y%m%d%H%M%S", self.started)
        folder = self.settings.report_dir
        rows = sorted(self.rows, key=row_sort_key)
        for index, row in enumerate(rows):
            row["data_id"] = index
        written = [write_csv(folder / f"llmprec_cmp_report_{stamp}.csv", COLUMNS, rows)]
        if self.settings.compares_dumps:
            unmatched = [_unmatched_row(u) for u in self._safe_match().unmatched]
            written.append(write_csv(folder / f"llmprec_unmatched_{stamp}.csv", UNMATCHED_COLUMNS, unmatched))
        if self.settings.update_baseline:
            written.append(write_baseline(self.settings.baseline, rows))
        self.report_paths = [str(path) for path in written]

    def _safe_match(self) -> MatchResult:
        try:
            return self.match()
        except pytest.UsageError:
            return MatchResult()

    def summary(self) -> list[str]:
        if not (self.settings.compares_dumps or self.rows):
            return []
        match = self._safe_match()
        counts = {"golden": 0, "my": 0}
        for unmatched in match.unmatched:
            counts[unmatched.side] += 1
        notes = list(match.notes)
        for side in ("golden", "my"):
            dump = self._dumps.get(side)
            if dump is not None and dump.problems:
                notes.append(
                    f"{len(dump.problems)} unreadable entries in the {side} dump, e.g. "
                    f"{dump.problems[0].path}: {dump.problems[0].message}"
                )
        return summary_lines(sorted(self.rows, key=row_sort_key), counts, notes, self.report_paths)

    def close(self) -> None:
        self._ahead.shutdown(wait=False, cancel_futures=True)


def _unmatched_row(unmatched) -> dict[str, Any]:
    record = unmatched.record
    return {
        "side": unmatched.side,
        "token_id": record.token,
        "node": record.node,
        "leaf": record.leaf,
        "node_type": record.node_type,
        "data_path": record.describe(),
        "reason": unmatched.reason,
    }
