"""``RowStore``: the report rows of a comparison, held in memory up to ``HELD_ROWS``, then spooled.

A run of a few thousand pairs keeps its rows as they are, and every report is written from all of
them. Past ``HELD_ROWS`` the rows go to an unnamed temporary file (pickled, one record each, the
rows are this process's own dicts) and only a ``RowDigest`` stays in memory: the exact counts and
the rows the summary and the HTML report need (the first divergences, the worst pair and a
failing pair of each layer, the worst pairs by cosine, the first failing pairs). The CSV reports
and the baseline are written by reading the spool back in report order.
"""

from __future__ import annotations

import heapq
import math
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..dumps.torch_dump import WEIGHTS_TOKEN
from ..report.layers import layer_index
from ..report.rows import ERROR, FAILED, PASSED, row_sort_key
from ..report.summary import WORST_COUNT, Counts

HELD_ROWS = 20_000
"""Rows kept in memory before the store spools them (about 5 KB each)."""
FAILING_KEPT = 1_000
"""Failing rows a spooled run keeps for the HTML report (the earliest in execution order)."""


class RowDigest:
    """What the summary and the HTML report need of many rows, in bounded memory."""

    def __init__(self) -> None:
        self.total = self.passed = self.failed = self.unreadable = 0
        self.weights_failing = 0
        self._first: dict[bool, dict[str, Any]] = {}  # weights? -> earliest failing dump pair
        self._layers: dict[int, list[Any]] = {}  # layer -> [worst deficit, worst row, a failing row]
        self._worst: list[tuple[Any, int, dict[str, Any]]] = []  # heap of the WORST_COUNT worst by cosine
        self._failing: list[tuple[Any, int, dict[str, Any]]] = []  # heap of the FAILING_KEPT earliest
        self._seen = 0

    def add(self, row: dict[str, Any]) -> None:
        self.total += 1
        self._seen += 1
        verdict = row.get("verdict")
        self.passed += verdict == PASSED
        self.failed += verdict == FAILED
        self.unreadable += verdict == ERROR
        failing = verdict in (FAILED, ERROR)
        dump_pair = isinstance(row.get("node_order"), int)
        weights = row.get("token_id") == WEIGHTS_TOKEN
        if failing and dump_pair:
            self.weights_failing += weights
            first = self._first.get(weights)
            if first is None or row["node_order"] < first["node_order"]:
                self._first[weights] = row
            entry = (-row["node_order"], -self._seen, row)
            if len(self._failing) < FAILING_KEPT:
                heapq.heappush(self._failing, entry)
            elif entry > self._failing[0]:
                heapq.heapreplace(self._failing, entry)
        if dump_pair and not weights:
            layer = layer_index(str(row.get("pair_key", "")))
            if layer is not None:
                cosine = row.get("cosine_similarity")
                deficit = 1.0 - cosine if isinstance(cosine, float) and not math.isnan(cosine) else math.inf
                kept = self._layers.setdefault(layer, [-math.inf, None, None])
                if deficit > kept[0]:
                    kept[0], kept[1] = deficit, row
                if failing and kept[2] is None:
                    kept[2] = row
        cosine = row.get("cosine_similarity")
        if isinstance(cosine, float):
            badness = (-cosine, row.get("relative_euclidean_distance") or 0.0)
            entry = (badness, -self._seen, row)
            if len(self._worst) < WORST_COUNT:
                heapq.heappush(self._worst, entry)
            elif entry > self._worst[0]:
                heapq.heapreplace(self._worst, entry)

    def counts(self, unmatched: dict[str, int] | None = None) -> Counts:
        unmatched = unmatched or {}
        return Counts(
            self.total,
            self.passed,
            self.failed,
            self.unreadable,
            unmatched.get("golden", 0),
            unmatched.get("my", 0),
        )

    def rows(self) -> list[dict[str, Any]]:
        """The kept rows, each once, in report order."""
        kept = list(self._first.values())
        for _, worst, failing in self._layers.values():
            kept += [row for row in (worst, failing) if row is not None]
        kept += [row for _, _, row in self._worst] + [row for _, _, row in self._failing]
        unique = {id(row): row for row in kept}
        return sorted(unique.values(), key=row_sort_key)


class RowStore:
    """Rows added in any order; read back in report order (``data_id`` numbered)."""

    def __init__(self, held: int | None = None) -> None:
        self._held_limit = HELD_ROWS if held is None else held
        self._rows: list[dict[str, Any]] = []
        self._spool: IO[bytes] | None = None
        self._index: list[tuple[tuple, int]] = []  # (sort key, offset in the spool)
        self.digest: RowDigest | None = None

    def __len__(self) -> int:
        return len(self._index) if self._spool is not None else len(self._rows)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The rows as they came while held, in report order once spooled."""
        return iter(self._rows) if self._spool is None else self.ordered()

    @property
    def spooled(self) -> bool:
        return self._spool is not None

    def add(self, row: dict[str, Any]) -> None:
        if self._spool is None:
            self._rows.append(row)
            if len(self._rows) > self._held_limit:
                self._spill()
        else:
            self._write(row)

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.add(row)

    def _spill(self) -> None:
        self._spool = tempfile.TemporaryFile(prefix="llmprec-rows-")  # noqa: SIM115 - closed by close()
        self.digest = RowDigest()
        rows, self._rows = self._rows, []
        for row in rows:
            self._write(row)

    def _write(self, row: dict[str, Any]) -> None:
        assert self._spool is not None and self.digest is not None
        self._index.append((row_sort_key(row), self._spool.tell()))
        pickle.dump(row, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        self.digest.add(row)

    def ordered(self) -> Iterator[dict[str, Any]]:
        """Every row in execution order (hand-written comparisons last), numbered by ``data_id``."""
        if self._spool is None:
            ordered = sorted(self._rows, key=row_sort_key)
            for index, row in enumerate(ordered):
                row["data_id"] = index
            yield from ordered
            return
        self._spool.flush()
        with open(self._spool.fileno(), "rb", closefd=False) as spool:
            for index, (_, offset) in enumerate(sorted(self._index, key=lambda entry: entry[0])):
                spool.seek(offset)
                row = pickle.load(spool)  # this process's own rows
                row["data_id"] = index
                yield row

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
