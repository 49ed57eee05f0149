"""The pytest plugin (entry point ``pytest11: llmprec``): glue between pytest and the library.

Loading and configuring the plugin imports nothing heavy; torch and the comparison machinery
are imported the first time a session needs them (dump options given, a fixture requested).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from .options import pytest_addoption
from .options import pytest_configure as _declare_markers

__all__ = ["pytest_addoption", "pytest_configure", "pytest_ignore_collect"]

DUMP_FOLDERS = ("msit_dump*", "ait_dump*", "torch_tensors", "msit_ge_dump", "msit_fx_dump", "msit_fx_nodes")
"""Folders that dumps are written to: pytest does not look for tests in them (unless named as an
argument), and neither in the ``--llm-golden``/``--llm-my`` paths."""


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
    if plugin.html_table and not hasattr(config, "workerinput"):  # pytest-html writes a report
        from .html_extras import HtmlExtras

        config.pluginmanager.register(HtmlExtras(config, plugin), "llmprec-html-extras")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not collection_path.is_dir():
        return None
    if any(path == collection_path or collection_path in path.parents for path in _argument_paths(config)):
        return None  # an argument names this folder or a path inside it
    if any(fnmatch.fnmatchcase(collection_path.name, pattern) for pattern in DUMP_FOLDERS):
        return True
    from .hooks import STASH

    plugin = config.stash.get(STASH, None)
    if plugin is not None and collection_path in (plugin.settings.golden, plugin.settings.my):
        return True
    return None


def _argument_paths(config: pytest.Config) -> set[Path]:
    base = Path(config.invocation_params.dir)
    return {(base / arg.split("::")[0]).absolute() for arg in config.args}
