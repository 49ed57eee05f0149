"""Command-line options, ini keys and markers of the plugin."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmprec", "LLM precision comparison (pytest-llmprec)")
    group.addoption(
        "--llm-standard",
        dest="llm_standard",
        default=None,
        metavar="NAME",
        help="precision standard profile: default, strict, msit or msprobe.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "llm_precision(standard=None, **thresholds): override precision thresholds for the marked tests.",
    )
