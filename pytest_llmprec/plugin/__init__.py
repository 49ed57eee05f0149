"""The pytest plugin (entry point ``pytest11: llmprec``): glue between pytest and the library.

Loading and configuring the plugin imports nothing heavy; torch and the comparison machinery
are imported the first time a session needs them (dump options given, a fixture requested).
"""

from __future__ import annotations

import pytest

from .options import pytest_addoption
from .options import pytest_configure as _declare_markers

__all__ = ["pytest_addoption", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    _declare_markers(config)
    from . import fixtures, opcheck, overflow
    from .hooks import STASH, LlmPlugin
    from .options import read_settings

    plugin = LlmPlugin(config, read_settings(config))
    config.stash[STASH] = plugin
    config.pluginmanager.register(fixtures, "llmprec-fixtures")
    config.pluginmanager.register(plugin, "llmprec-session")
    if not hasattr(config, "workerinput"):  # names in the reports the controller writes
        from .report_names import ReportNames

        config.pluginmanager.register(ReportNames(config), "llmprec-report-names")
    opcheck.register(config)
    overflow.register(config)
    if config.pluginmanager.hasplugin("html") and not hasattr(config, "workerinput"):
        from .html_extras import HtmlExtras

        config.pluginmanager.register(HtmlExtras(config, plugin), "llmprec-html-extras")
