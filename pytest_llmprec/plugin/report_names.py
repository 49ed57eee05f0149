"""How dump pair items are named in pytest's reports: the failure section heading and the JUnit
testcase ``classname``/``name``.

An item's id (``llm/token0/root.a/output``) is no file path with a Python domain: as the
``reportinfo`` domain, pytest would print it with every "." shown as "::" in verbose lines, and
without one the failure section is headed "test session". So the domain is set on each report once
the terminal has printed its line, and JUnit gets ``classname="llm.token0.root.a" name="output"``
(``--junit-prefix`` first when given), which CI viewers group by.
"""

from __future__ import annotations

import pytest

from .items import ID_PREFIX


class ReportNames:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport):
        ours = str(report.nodeid).startswith(ID_PREFIX + "/")
        if ours and report.when == "teardown":  # before junitxml reads the attributes and closes the case
            self._name_junit_testcase(report)
        yield
        if ours and report.location is not None:  # after the terminal's line: the failure heading
            path, line, _ = report.location
            report.location = (path, line, str(report.nodeid))

    def _name_junit_testcase(self, report: pytest.TestReport) -> None:
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        *groups, name = str(report.nodeid).split("/")
        reporter = xml.node_reporter(report)
        reporter.add_attribute("classname", ".".join(([xml.prefix] if xml.prefix else []) + groups))
        reporter.add_attribute("name", name)
