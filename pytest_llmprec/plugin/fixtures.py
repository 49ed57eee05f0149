"""Fixtures for hand-written tests: the loaded dumps, parametrised pairs and ``llm_compare``."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pytest

from .hooks import STASH, LlmPlugin, marker_layer

if TYPE_CHECKING:
    from ..compare.results import CompareResult
    from ..dumps.base import Dump
    from ..matching import Pair


def _plugin(config: pytest.Config) -> LlmPlugin:
    return config.stash[STASH]


class PairTensors:
    """A matched pair for a parametrised test; the tensors are read on first access."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.key = pair.key
        self.token = pair.token
        self.golden_record = pair.golden
        self.my_record = pair.my
        self.node = pair.golden.node

    @cached_property
    def golden(self):
        return self.pair.golden.load()

    @cached_property
    def my(self):
        return self.pair.my.load()

    def __repr__(self) -> str:
        return f"PairTensors({self.key!r})"


def _dump(request: pytest.FixtureRequest, side: str) -> Dump:
    plugin = _plugin(request.config)
    if (plugin.settings.golden if side == "golden" else plugin.settings.my) is None:
        pytest.skip(f"no {side} dump: pass --llm-{side}=PATH")
    from ..pipeline import SetupError

    try:
        return plugin.comparison().dump(side)
    except SetupError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def llm_golden(request: pytest.FixtureRequest) -> Dump:
    """The golden dump index (skips the test when --llm-golden is absent)."""
    return _dump(request, "golden")


@pytest.fixture(scope="session")
def llm_my(request: pytest.FixtureRequest) -> Dump:
    """The dump under test (skips the test when --llm-my is absent)."""
    return _dump(request, "my")


@pytest.fixture
def llm_pair(request: pytest.FixtureRequest) -> PairTensors:
    """One matched pair; a test requesting it runs once per pair (skipped without dumps)."""
    return PairTensors(request.param)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "llm_pair" in metafunc.fixturenames:
        pairs = _plugin(metafunc.config).matched_pairs().pairs
        metafunc.parametrize("llm_pair", pairs, ids=[pair.key for pair in pairs], indirect=True)


@pytest.fixture
def llm_compare(request: pytest.FixtureRequest) -> Callable[..., CompareResult]:
    """``llm_compare(golden, my, *, name=None, standard=None, tolerance=None, **thresholds)``.

    Compares, judges with the standard chosen by precedence (call > command line > marker >
    ini rule > profile > dtype default; rules match ``name``, else the test id), adds the row to
    the session report and raises ``PrecisionError`` on failure.
    """
    comparison = _plugin(request.config).comparison()
    node = request.node

    def compare(
        golden: Any,
        my: Any,
        *,
        name: str | None = None,
        standard: Any = None,
        tolerance: Any = None,
        **thresholds: float,
    ) -> CompareResult:
        __tracebackhide__ = True
        from ..assertions.checks import PrecisionError, check_precision
        from ..compare.metrics import as_tensor
        from ..report.rows import comparison_row
        from ..standards import Layer

        g, m = as_tensor(golden, "golden"), as_tensor(my, "my")
        call = Layer.from_keywords("call argument", profile=standard, tolerance=tolerance, **thresholds)
        chosen = comparison.standard(name or node.nodeid, g.dtype, m.dtype, marker_layer(node), call)
        key = node.nodeid if name is None else f"{node.nodeid}::{name}"
        rows = node.__dict__.setdefault("llmprec_rows", [])
        try:
            result, verdict = check_precision(g, m, chosen, f"llm_compare {key}")
        except PrecisionError as failure:
            rows.append(comparison_row(key, None, "", None, None, failure.result, failure.verdict))
            raise
        rows.append(comparison_row(key, None, "", None, None, result, verdict))
        return result

    return compare
