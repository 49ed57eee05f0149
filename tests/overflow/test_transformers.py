"""A random-weight transformers LlamaForCausalLM whose layer 1 MLP overflows: the guard, the marker,
the fixture, a dump scan and ``llmprec errcheck`` all name ``root.model.layers.1.mlp.down_proj`` first."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from llama_models import OVERFLOWING, ids, llama

from pytest_llmprec import DumpConfig, OverflowGuard, load_dump, register_hook
from pytest_llmprec.cli import main
from pytest_llmprec.overflow import scan_nodes, scan_record

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"


def guarded(model, **options) -> OverflowGuard:
    guard = OverflowGuard(**options)
    with guard, torch.no_grad():
        model(ids())
    return guard


def test_float16_llama_overflow_is_named_and_model_outputs_are_handled():
    guard = guarded(llama())
    first = guard.first
    assert (first.call.name, first.call.class_name, first.which) == (OVERFLOWING, "Linear", "output")
    assert first.last_clean.name == "root.model.layers.1.mlp.up_proj"
    root = [d for d in guard.detections if d.call.name == "root"]
    assert [name for name, _ in root[0].tensors] == ["output.logits"]  # a CausalLMOutputWithPast
    assert any("DynamicCache is not a tensor" in reason for reason in guard.skipped)


def test_bfloat16_llama_saturation_is_detected():
    guard = guarded(llama(torch.bfloat16, saturate=True))
    assert guard.first.call.name == OVERFLOWING
    assert guard.first.finding.saturated > 0
    assert guarded(llama(torch.bfloat16, saturate=True), saturation=False).detections == []


def module_calls(model) -> int:
    """The calls of the model's own modules in one forward, counted by per-module hooks."""
    calls = []
    hooks = [module.register_forward_hook(lambda *_: calls.append(1)) for module in model.modules()]
    with torch.no_grad():
        model(ids())
    for hook in hooks:
        hook.remove()
    return len(calls)


def test_a_llama_that_does_not_overflow_passes():
    model = llama(overflow=False)
    guard = guarded(model, near=0.5)
    assert guard.detections == []
    # the model's modules only: functions that transformers 5 runs as modules (kernels) are not
    assert guard.monitor.counts.calls == module_calls(model) == 32


def test_the_marker_and_the_fixture(pytester):
    pytester.makepyfile(
        textwrap.dedent(
            f"""
            import sys
            sys.path[:0] = [{str(HERE)!r}, {str(EXAMPLES)!r}]
            import pytest
            import torch
            from llama_models import ids, llama

            @pytest.mark.overflow
            def test_marked():
                with torch.no_grad():
                    llama()(ids())

            def test_fixture(overflow_guard):
                with torch.no_grad():
                    llama()(ids())
            """
        )
    )
    # -rN: no short summary, whose lines CI (the CI variable set) does not truncate
    result = pytester.runpytest("-p", "no:cacheprovider", "-rN")
    result.assert_outcomes(failed=2)
    assert result.stdout.str().count(f"overflow first in {OVERFLOWING} (Linear), call 0 in forward 0") == 2


def test_a_dump_scan_of_the_llama(tmp_path):
    model = llama()
    with register_hook(model, DumpConfig(dump_path=tmp_path)) as handle, torch.no_grad():
        model(ids())
    dump = load_dump(handle.root_dir)
    flagged = [node for node in scan_nodes(dump) if any(scan_record(r).overflowed for r in node.records)]
    assert flagged[0].key == f"token0/{OVERFLOWING}"


def test_errcheck_on_a_llama_program(tmp_path, capfd):
    # a real program run: the child imports transformers (a few seconds)
    script = tmp_path / "run.py"
    script.write_text(
        f"import sys\nsys.path[:0] = [{str(HERE)!r}, {str(EXAMPLES)!r}]\nimport torch\n"
        "from llama_models import ids, llama\nwith torch.no_grad():\n    llama()(ids())\n"
    )
    code = main(["errcheck", "--exec", f"{sys.executable} {script}", "-o", str(tmp_path / "out")])
    assert code == 0, capfd.readouterr().err
    (result,) = (tmp_path / "out").glob("msit_overflow_res_*.txt")
    assert result.read_text().splitlines()[0] == f"Overflow detected! Operator name: {OVERFLOWING}:Linear"
