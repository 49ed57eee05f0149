"""The pytest plugin (entry point ``pytest11: llmprec``): glue only.

pytest reads the hook functions from this module; they live in the
submodules and are re-exported here.
"""

from .options import pytest_addoption, pytest_configure

__all__ = ["pytest_addoption", "pytest_configure"]
