"""Shared test set-up: the pytester plugin, a bounded Hypothesis profile, and dump-writing fixtures.

Test helper modules live in tests/helpers (on the path through the ``pythonpath`` ini setting,
with examples/ for the tiny model).
"""

import os

import pytest
from hypothesis import HealthCheck, settings
from torch_dumps import read_report, write_torch_dump

pytest_plugins = ["pytester"]

try:  # import matplotlib before any in-process pytester run: pytester drops the modules a run
    # imported, and a second import of matplotlib inside one process mixes two class hierarchies
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401
except ImportError:
    pass

# the same for the built-in operator sets: a pytester run that imported them first would drop them,
# and the opcheck registry, loaded once, would not find their operators again
from pytest_llmprec.opcheck.registry import op_types  # noqa: E402

op_types()

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile("thorough", settings.get_profile("ci"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def torch_dump():
    """``torch_dump(folder, {token: {module: {leaf: tensor}}}, order=None)`` writes an msit torch dump."""
    return write_torch_dump


@pytest.fixture
def report_csv():
    """``report_csv(folder, prefix="llmprec_cmp_report_")`` -> (header, rows) of the one report there."""
    return read_report
