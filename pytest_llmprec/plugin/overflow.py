"""pytest glue of the overflow checks: the ``overflow`` marker, the ``overflow_guard`` fixture and
the ``--llm-overflow=DUMP`` items (one per node), their report and summary.

Nothing here imports torch until a marked test runs, the fixture is requested or a dump is scanned.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from .options import OverflowSettings, read_overflow_settings

if TYPE_CHECKING:
    from ..dumps.base import Dump
    from ..overflow.dump_scan import ScanNode
    from ..overflow.guard import OverflowGuard

ID_PREFIX = "overflow"
MARKER = "overflow"
FIXTURE = "overflow_guard"


def guard_for(item: pytest.Item) -> OverflowGuard:
    """A guard with the options of the item's ``overflow`` marker (defaults without one)."""
    from ..overflow.guard import OPTIONS, OverflowGuard

    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return OverflowGuard()
    if marker.args:
        pytest.fail(f"@pytest.mark.overflow takes keyword arguments only, got {marker.args!r}", pytrace=False)
    unknown = sorted(set(marker.kwargs) - set(OPTIONS))
    if unknown:
        pytest.fail(f"@pytest.mark.overflow: unknown option(s) {', '.join(unknown)}; "
                    f"the options are {', '.join(OPTIONS)}", pytrace=False)  # fmt: skip
    try:
        return OverflowGuard(**marker.kwargs)
    except ValueError as error:
        problem = str(error)
    pytest.fail(f"@pytest.mark.overflow: {problem}", pytrace=False)


@pytest.fixture
def overflow_guard(request: pytest.FixtureRequest):
    """An ``OverflowGuard`` checking every module's outputs during the test (options from the test's
    ``overflow`` marker); the test fails with the first overflowing module. ``check()`` raises
    now, ``clear()`` forgets what was found, ``add_model(model, prefix)`` names a model's modules."""
    with guard_for(request.node) as guard:
        yield guard


class OverflowFailureItem(Exception):
    """A dump node whose outputs overflowed or could not be read; the message says which."""


class OverflowItem(pytest.Item):
    """Scans the outputs of one node of the ``--llm-overflow`` dump."""

    def __init__(self, *, node: ScanNode, plugin: OverflowPlugin, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node = node
        self.plugin = plugin
        self.add_marker("llm_overflow")

    def runtest(self) -> None:
        from ..errors import DumpFormatError
        from ..overflow.dump_scan import scan_record
        from ..overflow.report import OK, dump_row

        settings = self.plugin.settings
        statistics = bool(self.plugin.dump().info.get("statistics_only"))
        rows, problems = [], []
        for record in self.node.records:
            try:
                finding = scan_record(
                    record, near=settings.near, saturation=settings.saturation, statistics=statistics
                )
            except (DumpFormatError, OSError) as error:
                rows.append(dump_row(record, None, error=str(error)))
                problems.append(f"  {record.leaf}: cannot be read: {error}")
                continue
            row = dump_row(record, finding, near=settings.near is not None)
            rows.append(row)
            if row["verdict"] != OK:
                problems.append(f"  {record.leaf}: {finding.describe()}")
        self.llmprec_overflow_rows = rows
        if problems:
            where = self.node.key + (f" ({self.node.node_type})" if self.node.node_type else "")
            lines = [f"overflow in {where}:", *problems]
            lines += [f"  file: {record.describe()}" for record in self.node.records[:1]]
            raise OverflowFailureItem("\n".join(lines))

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(OverflowFailureItem):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        # a domain that does not end the node id: pytest would show its dots as "::"
        return self.path, None, f"{ID_PREFIX} {self.node.key}"


class OverflowPlugin:
    """The hooks of the overflow checks."""

    def __init__(self, config: pytest.Config, settings: OverflowSettings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.started = time.gmtime()
        self.rows: list[dict[str, Any]] = []
        self.report_paths: list[str] = []
        self._dump: Dump | None = None

    # ----- live checks: the marker and the fixture ---------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        """Run a marked test (or one using the fixture) under a guard; fail it with the guard's report.

        The report replaces the traceback of an ``OverflowFailure`` (a guard with ``stop=True`` raises
        one inside the forward). When the test fails for another reason while something overflowed,
        its own failure stays and the report is added as a section of it.
        """
        guard = getattr(item, "funcargs", {}).get(FIXTURE)
        own = None
        if guard is None and item.get_closest_marker(MARKER) is not None:
            own = guard = guard_for(item).install()
        if guard is None:
            return (yield)
        from ..overflow.assertion import OverflowFailure

        result = message = None
        try:
            result = yield
        except OverflowFailure as failure:
            message = str(failure)
        except Exception:
            if guard.detections:
                item.add_report_section("call", "overflow", guard.message())
                guard.clear()
            raise
        finally:
            if own is not None:
                own.remove()
        if message is None and guard.detections:
            message = guard.message()
        guard.clear()
        if message is not None:
            pytest.fail(message, pytrace=False)
        return result

    # ----- dump scans --------------------------------------------------------------------------------
    def dump(self) -> Dump:
        if self._dump is None:
            from ..dumps import load_dump
            from ..errors import DumpFormatError

            try:
                self._dump = load_dump(self.settings.dump)
            except (DumpFormatError, OSError) as error:
                raise pytest.UsageError(f"--llm-overflow={self.settings.dump}: {error}") from None
        return self._dump

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        if self.settings.dump is None:
            return
        from ..overflow.dump_scan import scan_nodes

        nodes = scan_nodes(self.dump())
        added = [
            OverflowItem.from_parent(session, name=name, nodeid=name, node=node, plugin=self)
            for node in nodes
            for name in [f"{ID_PREFIX}/{node.key}"]
        ]
        if added:
            items.extend(added)
            session.ihook.pytest_collectreport(report=pytest.CollectReport(ID_PREFIX, "passed", None, added))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        rows = getattr(item, "llmprec_overflow_rows", None)
        if call.when == "call" and rows:
            outcome.get_result().llmprec_overflow_rows = rows  # travels to the xdist controller

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rows = getattr(report, "llmprec_overflow_rows", None)
        if rows and report.when == "call" and not self.is_worker:
            self.rows.extend(rows)

    def _reports(self) -> bool:
        """Whether this process reports a dump scan (the controller or a serial run that scanned)."""
        return not self.is_worker and self.settings.dump is not None and bool(self.rows or self._dump)

    def pytest_sessionfinish(self) -> None:
        if not self._reports():
            return
        from ..overflow.report import DUMP_COLUMNS
        from ..report.csv_files import write_csv
        from ..report.rows import STAMP_FORMAT

        stamp = time.strftime(STAMP_FORMAT, self.started)
        rows = sorted(self.rows, key=lambda row: row["order"])
        path = write_csv(self.settings.report_dir / f"llmprec_overflow_{stamp}.csv", DUMP_COLUMNS, rows)
        self.report_paths = [str(path)]

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self._reports():
            return
        from ..overflow.report import dump_summary_lines

        terminalreporter.section("llmprec overflow")
        for line in dump_summary_lines(self.rows, self.report_paths):
            terminalreporter.write_line(line)


def register(config: pytest.Config) -> None:
    """Register the fixture and the hooks (from ``plugin.pytest_configure``)."""
    import sys

    config.pluginmanager.register(sys.modules[__name__], "llmprec-overflow-fixtures")
    config.pluginmanager.register(OverflowPlugin(config, read_overflow_settings(config)), "llmprec-overflow")
