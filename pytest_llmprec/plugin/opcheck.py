"""Operator prechecks in pytest: ``--llm-opcheck=DUMP`` items, the ``opcheck`` marker and fixture.

Each case of the dump becomes an item ``opcheck/{case id}`` (ATB: ``opcheck/{op_id}_{op_name}``,
torch: ``opcheck/token0/root.model.layers.3.mlp.act_fn``) in execution order, marked ``opcheck``.
Workers attach their report rows to the test reports; the controller (or the serial process)
writes ``llmprec_opcheck_report_{time}.csv`` at the end, also after Ctrl-C. torch is imported only
when a run uses this feature.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..standards.thresholds import Layer
from .options import command_line_thresholds, config_path, report_dir

if TYPE_CHECKING:
    import torch

    from ..opcheck.cases import OpCase
    from ..opcheck.check import CaseResult
    from ..opcheck.run import OpcheckPlan

ID_PREFIX = "opcheck"
MARKER = "opcheck"
ROWS = "llmprec_opcheck_rows"
PROPERTIES = ("op_name", "precision_result", "verdict", "max_ulp_error", "relative_euclidean_distance")


class OpcheckFailure(Exception):
    """An operator case that failed its standard or could not be read; the message says why."""


def _command_line_layer(config: pytest.Config) -> Layer:
    return Layer("command line", config.getoption("llm_standard"), command_line_thresholds(config))


def marker_layer(marker: pytest.Mark | None) -> Layer | None:
    """The standard and thresholds an ``opcheck`` marker sets (its keywords other than ``params``)."""
    if marker is None:
        return None
    options = {k: v for k, v in marker.kwargs.items() if k not in ("params", "op_type")}
    try:
        return Layer.from_keywords("marker opcheck", profile=options.pop("standard", None), **options)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"@pytest.mark.opcheck: {exc}") from None


class OpcheckPlugin:
    """The state of one run: the planned cases, the rows received, the report written."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.dump_path = config_path(config, "llm_opcheck")
        self.report_dir = report_dir(config)
        self.skip_bad_input = config.getoption("llm_opcheck_skip_bad_input")
        if self.dump_path is not None and not os.path.exists(self.dump_path):
            raise pytest.UsageError(f"--llm-opcheck={self.dump_path}: no such file or folder")
        self.started = time.gmtime()
        self.rows: list[dict[str, Any]] = []
        self.plan: OpcheckPlan | None = None
        self.results: list[CaseResult] = []
        self.report_path: Path | None = None
        self.current: pytest.Item | None = None

    # ----- collection ---------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        if self.dump_path is None:
            return
        added = self._items(session)
        items.extend(added)  # before -k/-m deselection runs; reported like a collector's result
        session.ihook.pytest_collectreport(report=pytest.CollectReport(ID_PREFIX, "passed", None, added))

    def _items(self, session: pytest.Session) -> list[pytest.Item]:
        from ..errors import LlmprecError
        from ..opcheck.run import plan_opcheck

        config = self.config
        try:
            self.plan = plan_opcheck(
                self.dump_path,
                ids=config.getoption("llm_opcheck_ids") or None,
                names=config.getoption("llm_opcheck_name") or None,
            )
        except (LlmprecError, OSError) as exc:
            return [_problem_item(session, "load", f"--llm-opcheck={self.dump_path}: {exc}")]
        if self.plan.empty_reason:
            return [_problem_item(session, "no-cases", self.plan.empty_reason)]
        layer = _command_line_layer(config)
        return [
            OpcheckItem.from_parent(
                session,
                name=f"{ID_PREFIX}/{case.case_id}",
                nodeid=f"{ID_PREFIX}/{case.case_id}",
                case=case,
                layer=layer,
                skip_bad_input=self.skip_bad_input,
            )
            for case in self.plan.cases
        ]

    # ----- running ------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.current = item

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        rows = getattr(item, ROWS, None)
        if call.when == "call" and rows:
            setattr(outcome.get_result(), ROWS, list(rows.values()))  # travels to the xdist controller

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rows = getattr(report, ROWS, None)
        if rows and not self.is_worker:
            self.rows.extend(rows)

    # ----- reports ------------------------------------------------------------------------------
    def pytest_sessionfinish(self) -> None:
        if self.is_worker or not (self.dump_path is not None or self.rows):
            return
        from ..opcheck.report import report_path, write_report

        self.report_path = write_report(report_path(self.report_dir, self.started), self.rows)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.report_path is None:
            return
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.get("status", "")] = counts.get(row.get("status", ""), 0) + 1
        cases = {row.get("case_id") for row in self.rows}
        terminalreporter.section("llmprec opcheck")
        terminalreporter.write_line(
            f"{len(cases)} operator cases, {len(self.rows)} report rows: "
            + ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        )
        if self.plan is not None and self.plan.skipped:
            kinds = ", ".join(f"{name} ({count})" for name, count in sorted(self.plan.skipped.items()))
            terminalreporter.write_line(f"nodes without a reference, not checked: {kinds}")
        terminalreporter.write_line(f"report: {self.report_path}")


class _OpcheckItemBase(pytest.Item):
    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(OpcheckFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, self.nodeid


class OpcheckItem(_OpcheckItemBase):
    """Checks one operator case of the ``--llm-opcheck`` dump."""

    def __init__(self, *, case: OpCase, layer: Layer, skip_bad_input: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.layer = layer
        self.skip_bad_input = skip_bad_input
        self.add_marker(MARKER)

    def runtest(self) -> None:
        from ..opcheck.check import ERROR, NOT_CHECKABLE, PASSED, check_case
        from ..opcheck.report import case_rows

        layers = [layer for layer in (marker_layer(self.get_closest_marker("llm_precision")),) if layer]
        result = check_case(self.case, layers=[*layers, self.layer])
        rows = case_rows(result)
        setattr(self, ROWS, {f"{self.case.case_id}#{i}": row for i, row in enumerate(rows)})
        first = rows[0]
        self.user_properties += [(name, first.get(name, "")) for name in PROPERTIES]
        self.user_properties.append(("status", result.status))
        if result.status == PASSED:
            return
        if result.status == NOT_CHECKABLE:
            pytest.skip(f"{self.case.case_id}: {result.reason}")
        if result.status == ERROR and self.skip_bad_input:
            pytest.skip(f"bad input (--llm-opcheck-skip-bad-input): {result.reason}")
        raise OpcheckFailure(result.message or result.reason)


class ProblemItem(_OpcheckItemBase):
    """Fails with the reason the dump gave no cases (unreadable, no operator folders)."""

    def __init__(self, *, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason
        self.add_marker(MARKER)

    def runtest(self) -> None:
        raise OpcheckFailure(self.reason)


def _problem_item(session: pytest.Session, name: str, reason: str) -> pytest.Item:
    nodeid = f"{ID_PREFIX}/{name}"
    return ProblemItem.from_parent(session, name=nodeid, nodeid=nodeid, reason=reason)


# --- the fixture of hand-written operator tests ---------------------------------------------------


class OpcheckFixture:
    """``opcheck.inputs(shapes, dtype=)`` draws inputs; ``opcheck.check(actual)`` compares them with
    the reference of the test's ``@pytest.mark.opcheck(op_type, params=...)`` on the last inputs
    drawn (or ``inputs=``), judged by the marker's standard and thresholds (default: the opcheck
    default). Session-scoped, so that ``@given`` tests can use it; its state follows the running test.
    """

    def __init__(self, plugin: OpcheckPlugin) -> None:
        self._plugin = plugin
        self._item: pytest.Item | None = None
        self._inputs: list[torch.Tensor] = []
        self._draws = 0

    def _current(self) -> pytest.Item:
        item = self._plugin.current
        if item is None:
            raise RuntimeError("the opcheck fixture is used outside a running test")
        if item is not self._item:
            self._item, self._inputs, self._draws = item, [], 0
        return item

    def _marker(self) -> pytest.Mark | None:
        return self._current().get_closest_marker(MARKER)

    def inputs(
        self,
        shapes: Sequence[Sequence[int]],
        dtype: Any = None,
        *,
        data: Any = None,
        seed: int | None = None,
        high: int = 128,
    ) -> list[torch.Tensor]:
        """One tensor per shape (``dtype``: one dtype or one per shape; default float32), drawn
        with ``testing.strategies.activations``: from hypothesis's ``data`` (``st.data()``) when
        given, else from a seed derived from the test id (reproducible). Integer dtypes give ids in
        ``[0, high)``. The tensors are remembered as the inputs of the next ``check``."""
        import torch

        from ..testing.strategies import activation_values, activations

        item = self._current()
        dtypes = list(dtype) if isinstance(dtype, (list, tuple)) else [dtype or torch.float32] * len(shapes)
        if len(dtypes) != len(shapes):
            raise ValueError(f"{len(dtypes)} dtypes for {len(shapes)} shapes")
        tensors = []
        for shape, kind in zip(shapes, dtypes, strict=True):
            shape = tuple(shape)
            base = seed if seed is not None else zlib.crc32(item.nodeid.encode())
            draw_seed = (base + self._draws) % 2**32
            self._draws += 1
            if not kind.is_floating_point:
                generator = torch.Generator().manual_seed(draw_seed)
                tensors.append(torch.randint(0, high, shape, generator=generator).to(kind))
            elif data is not None:
                tensors.append(data.draw(activations(shape=shape, dtype=kind)))
            else:
                tensors.append(activation_values(shape, kind, draw_seed))
        self._inputs = tensors
        return tensors

    def reference(
        self,
        inputs: Sequence[torch.Tensor] | None = None,
        *,
        op_type: str | None = None,
        params: Mapping[str, Any] | None = None,
        weights: Mapping[str, torch.Tensor] | None = None,
        dtype: Any = None,
    ) -> list[torch.Tensor]:
        """The reference outputs of the marked operator (float64; ``dtype="operator"``: its dtypes)."""
        import torch

        from ..opcheck import reference

        op, chosen, tensors = self._call(inputs, op_type, params)
        wanted = None if dtype == "operator" else torch.float64
        return reference(op, tensors, chosen, weights=weights, dtype=wanted)

    def _call(
        self, inputs: Sequence[Any] | None, op_type: str | None, params: Mapping[str, Any] | None
    ) -> tuple[str, dict[str, Any], list[Any]]:
        marker = self._marker()
        op = op_type or (marker.args[0] if marker is not None and marker.args else None)
        op = op or (marker.kwargs.get("op_type") if marker is not None else None)
        if not op:
            raise pytest.UsageError(
                "opcheck.check: name the operator: @pytest.mark.opcheck('OpType') or op_type="
            )
        chosen = dict(marker.kwargs.get("params") or {}) if marker is not None else {}
        chosen.update(params or {})
        tensors = list(inputs) if inputs is not None else list(self._inputs)
        if not tensors:
            raise pytest.UsageError("opcheck.check: no inputs: call opcheck.inputs(...) or pass inputs=")
        return op, chosen, tensors

    def check(
        self,
        actual: torch.Tensor | Sequence[torch.Tensor],
        *,
        inputs: Sequence[torch.Tensor] | None = None,
        op_type: str | None = None,
        params: Mapping[str, Any] | None = None,
        weights: Mapping[str, torch.Tensor] | None = None,
        name: str | None = None,
        **thresholds: Any,
    ) -> CaseResult:
        """Compare ``actual`` (one tensor or the outputs in order) with the reference; raises
        ``PrecisionError`` with the failed checks; ``thresholds`` (``max_ulp=...``,
        ``standard=``) override the marker's. Adds the rows to the opcheck report."""
        __tracebackhide__ = True
        import torch

        from ..assertions import PrecisionError
        from ..opcheck import reference
        from ..opcheck.cases import OpCase
        from ..opcheck.check import PASSED, check_outputs
        from ..opcheck.report import case_rows

        item = self._current()
        op, chosen, tensors = self._call(inputs, op_type, params)
        references = reference(op, tensors, chosen, weights=weights, dtype=torch.float64)
        outputs = [actual] if isinstance(actual, torch.Tensor) else list(actual)
        case_id = item.nodeid if name is None else f"{item.nodeid}::{name}"
        case = OpCase(case_id, op, item.nodeid, "", None, chosen, [], [], kind="test", op_id=case_id)
        layers = [layer for layer in (marker_layer(self._marker()),) if layer]
        if thresholds:
            call = dict(thresholds)
            layers.append(Layer.from_keywords("call argument", profile=call.pop("standard", None), **call))
        result = check_outputs(case, references, outputs, layers=layers)
        stored = getattr(item, ROWS, None)
        if stored is None:
            stored = {}
            setattr(item, ROWS, stored)
        for index, row in enumerate(case_rows(result)):
            stored[f"{case_id}#{index}"] = row  # a hypothesis test keeps its last example's rows
        if result.status != PASSED:
            failed = next((check for check in result.outputs if not check.verdict.passed), None)
            raise PrecisionError(
                result.message,
                failed.result if failed else result.outputs[0].result if result.outputs else None,
                failed.verdict if failed else None,
            )
        return result


STASH = pytest.StashKey[OpcheckPlugin]()


@pytest.fixture(scope="session")
def opcheck(request: pytest.FixtureRequest) -> OpcheckFixture:
    """Hand-written operator prechecks: ``opcheck.inputs(...)`` and ``opcheck.check(actual)`` (see
    ``OpcheckFixture``)."""
    return OpcheckFixture(request.config.stash[STASH])


def register(config: pytest.Config) -> None:
    """Create the run's plugin object and register it with the fixture (from ``plugin/__init__``)."""
    plugin = OpcheckPlugin(config)
    config.stash[STASH] = plugin
    config.pluginmanager.register(plugin, "llmprec-opcheck")
    config.pluginmanager.register(sys.modules[__name__], "llmprec-opcheck-fixtures")
