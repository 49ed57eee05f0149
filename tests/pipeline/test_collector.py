"""collector_paused: the cyclic garbage collector off for a bulk phase, as it was afterwards."""

from __future__ import annotations

import gc

import pytest

from pytest_llmprec.pipeline.collector import collector_paused


@pytest.fixture
def collector_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.enable() if was else gc.disable()


def test_the_collector_is_paused_inside_and_resumed_after_even_on_error(collector_enabled):
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: the outer block resumes it
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), collector_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_collector_the_caller_disabled_stays_disabled(collector_enabled):
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
