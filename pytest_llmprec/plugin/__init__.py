"""The pytest plugin (entry point ``pytest11: llmprec``): glue between pytest and the library.

Options and markers are declared at import; everything that needs torch is imported when the
plugin is configured, and only the session object registered there does work.
"""

from __future__ import annotations

import pytest

from .options import pytest_addoption
from .options import pytest_configure as _declare_markers

__all__ = ["pytest_addoption", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    _declare_markers(config)
    from . import fixtures
    from .hooks import LlmPlugin
    from .options import read_settings
    from .session import LlmSession

    session = LlmSession(config, read_settings(config))
    config.stash[fixtures.STASH] = session
    config.pluginmanager.register(fixtures, "llmprec-fixtures")
    config.pluginmanager.register(LlmPlugin(session), "llmprec-session")
