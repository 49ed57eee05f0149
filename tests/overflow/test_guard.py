"""``OverflowGuard`` / ``OverflowMonitor`` on real models on the CPU (and on CUDA where there is one)."""

from __future__ import annotations

import math

import pytest
import tiny_llm
import torch
from overflow_models import BEFORE_IT, OVERFLOWING, Odd, overflowing_model, prompt, saturating_model
from torch import nn

from pytest_llmprec import OverflowFailure, OverflowGuard, load_dump
from pytest_llmprec.overflow import OverflowMonitor


def run(guard: OverflowGuard, model: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    with guard, torch.no_grad():
        return model(*inputs)


def test_float16_overflow_is_named_at_the_layer_that_overflowed():
    guard = OverflowGuard()
    run(guard, overflowing_model(), prompt())
    first = guard.first
    assert (first.call.name, first.call.class_name, first.call.call, first.call.forward) == (
        OVERFLOWING,
        "Linear",
        0,
        0,
    )
    assert (first.role, first.which, first.inner) == ("output", "output", False)
    assert first.finding.inf > 0 and first.finding.dtype == "torch.float16"
    assert first.last_clean.name == BEFORE_IT
    later = guard.detections[1:]
    assert [d.call.name for d in later[:3]] == [
        "root.model.layers.1.mlp",
        "root.model.layers.1",
        "root.model.norm",
    ]
    assert [d.inner for d in later[:3]] == [True, True, False]  # the norm got overflowed inputs
    message = guard.message()
    assert message.splitlines()[0] == f"overflow first in {OVERFLOWING} (Linear), call 0 in forward 0"
    assert f"last module with finite outputs: {BEFORE_IT} (Linear)" in message
    with pytest.raises(OverflowFailure, match=OVERFLOWING):
        guard.check()
    assert guard.detections == [] and guard.first is None
    guard.check()  # reported once


def test_a_model_that_does_not_overflow_passes():
    guard = OverflowGuard(near=0.5)
    with guard:
        tiny_llm.generate(tiny_llm.build_model(seed=0, dtype=torch.float16), prompt(), 3)
    assert guard.detections == []
    assert guard.monitor.counts.forwards == 3
    assert guard.monitor.counts.calls > 3 * 25
    guard.check()


def test_calls_and_forwards_are_counted_over_generation():
    guard = OverflowGuard()
    with guard:
        tiny_llm.generate(overflowing_model(), prompt(), 2)
    firsts = [d for d in guard.detections if d.call.name == OVERFLOWING]
    assert [(d.call.call, d.call.forward) for d in firsts] == [(0, 0), (0 + 1, 1)]


def test_bfloat16_saturation_is_overflow_unless_switched_off():
    guard = OverflowGuard()
    output = run(guard, saturating_model(), prompt())
    assert torch.isfinite(output).all()  # saturation hides the overflow in the result
    first = guard.first
    assert (first.call.name, first.call.class_name) == (OVERFLOWING, "SaturatingLinear")
    assert first.finding.saturated > 0 and first.finding.nan == first.finding.inf == 0
    assert "saturated at ±3.38953e+38" in guard.message()
    relaxed = OverflowGuard(saturation=False)
    run(relaxed, saturating_model(), prompt())
    assert relaxed.detections == []


def test_include_and_exclude_globs():
    guard = OverflowGuard(exclude="*.down_proj")
    run(guard, overflowing_model(), prompt())
    assert (guard.first.call.name, guard.first.inner) == ("root.model.layers.1.mlp", False)
    only = OverflowGuard(include=["root.lm_head", "root.model.norm"])
    run(only, overflowing_model(), prompt())
    assert [d.call.name for d in only.detections] == ["root.model.norm", "root.lm_head"]
    assert only.first.last_clean is None


class Amplify(nn.Module):
    """Overflows in a functional operation between two modules: only an input check sees it first."""

    def __init__(self) -> None:
        super().__init__()
        self.before = nn.Linear(4, 4).half()
        self.after = nn.Linear(4, 4).half()

    def forward(self, x):
        return self.after((self.before(x).abs() + 1) * 1e5)  # 1e5 is Inf in float16


def test_inputs_are_checked_when_asked():
    x = torch.ones(1, 4, dtype=torch.float16)
    outputs_only = OverflowGuard()
    run(outputs_only, Amplify(), x)
    assert (outputs_only.first.call.name, outputs_only.first.role) == ("root.after", "output")
    both = OverflowGuard(inputs=True)
    run(both, Amplify(), x)
    first = both.first
    assert (first.call.name, first.role, first.which) == ("root.after", "input", "input[0]")
    assert first.last_clean.name == "root.before"


def test_stop_raises_inside_the_forward_at_the_first_detection():
    model = overflowing_model()
    called = []
    model.lm_head.register_forward_hook(lambda *args: called.append(True))
    guard = OverflowGuard(stop=True)
    with pytest.raises(OverflowFailure, match=OVERFLOWING) as info:
        run(guard, model, prompt())
    assert called == []  # the forward stopped before the head
    assert [d.call.name for d in info.value.findings] == [OVERFLOWING]
    assert guard.monitor.counts.detections == 1
    again = OverflowGuard()
    run(again, tiny_llm.build_model(seed=0, dtype=torch.float16), prompt())  # the stack unwound cleanly
    assert again.detections == [] and again.monitor.counts.forwards == 1


def test_dump_saves_the_offending_call_in_the_msit_torch_layout(tmp_path):
    model = overflowing_model()
    seen = {}
    model.model.layers[1].mlp.down_proj.register_forward_hook(
        lambda module, args, output: seen.update(input=args[0].clone(), output=output.clone())
    )
    guard = OverflowGuard(dump=tmp_path)
    run(guard, model, prompt())
    assert guard.dump_dir.parent.name == "torch_tensors" and guard.dump_dir.name.startswith("cpu_")
    assert str(guard.dump_dir) in guard.message()
    dump = load_dump(tmp_path / guard.dump_dir.parts[-3], kind="torch")
    records = {(r.token, r.node, r.leaf): r for r in dump.records}
    assert set(records) == {(0, OVERFLOWING, "input_0"), (0, OVERFLOWING, "output")}
    assert torch.equal(records[(0, OVERFLOWING, "input_0")].load(), seen["input"])
    assert torch.equal(records[(0, OVERFLOWING, "output")].load(), seen["output"])
    assert records[(0, OVERFLOWING, "output")].node_type == "Linear"  # from model_tree.json


def test_a_dump_that_cannot_be_written_does_not_break_the_forward(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    guard = OverflowGuard(dump=blocker)
    run(guard, overflowing_model(), prompt())
    assert guard.first.call.name == OVERFLOWING
    assert guard.dump_dir is None and "could not be saved" in guard.message()


def test_unusual_outputs_are_handled_or_skipped_with_a_reason():
    guard = OverflowGuard()
    output = run(guard, Odd(), torch.ones(2, 3))
    assert torch.isinf(output).all()
    assert [d.call.name for d in guard.detections] == ["root.boom", "root"]
    reasons = guard.skipped
    assert any("root.obj output: a object is not a tensor" in r for r in reasons)
    assert any("root.sparse output: not scanned: a torch.sparse_coo tensor" in r for r in reasons)
    assert any("root.mapping output.cache: a object is not a tensor" in r for r in reasons)
    assert not any("none" in r or "number" in r or "text" in r for r in reasons)
    assert "not scanned (" in guard.message()
    # empty, complex, dataclass, mapping, nested (3), boom, root
    assert guard.monitor.counts.tensors == 1 + 1 + 1 + 1 + 3 + 1 + 1


def test_modules_returning_model_outputs_and_nested_values():
    guard = OverflowGuard()
    x = torch.tensor([[1.0, math.inf]])
    run(guard, Odd().mapping, x)
    assert (guard.first.which, guard.first.call.class_name) == ("output.logits", "Returns")
    nested = OverflowGuard()
    run(nested, Odd().nested, x)
    assert [name for name, _ in nested.first.tensors] == ["output[0]", "output[1][0]", "output[1][1].deep[0]"]
    dataclass = OverflowGuard()
    run(dataclass, Odd().dataclass, x)
    assert dataclass.first.which == "output.first"


class Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(2, 2)

    def forward(self, x):
        self.inner(x)
        raise RuntimeError("forward failed")


def test_a_forward_that_raises_leaves_the_guard_consistent():
    guard = OverflowGuard()
    with guard, pytest.raises(RuntimeError, match="forward failed"):
        Raises()(torch.ones(2))
    with guard:
        nn.Linear(2, 2)(torch.tensor([math.inf, 0.0]))
    assert guard.first.call.name == "root1" and guard.first.call.forward == 1


def test_module_names_come_from_each_top_level_model():
    first, second = tiny_llm.build_model(seed=0), overflowing_model()
    guard = OverflowGuard()
    with guard, torch.no_grad():
        first(prompt())
        second(prompt())
        second.lm_head(torch.full((64,), math.inf, dtype=torch.float16))  # a known submodule at top level
    names = [d.call.name for d in guard.detections]
    assert names[0] == OVERFLOWING.replace("root.", "root1.", 1)
    assert names[-1] == "root1.lm_head"
    named = OverflowGuard()
    named.add_model(second, "llama")
    run(named, second, prompt())
    assert named.first.call.name == "llama.model.layers.1.mlp.down_proj"


class Unregistered(nn.Module):
    def forward(self, x):
        return nn.ReLU()(x * math.inf)  # a module made during the forward has no attribute name


def test_modules_made_during_the_forward_are_named_after_their_caller():
    guard = OverflowGuard()
    run(guard, nn.Sequential(Unregistered()), torch.ones(2))
    assert guard.first.call.name == "root.0.ReLU"


def test_deferred_checks_find_the_same_detections_in_the_same_order():
    def names(monitor):
        with torch.no_grad():
            monitor.install()
            try:
                tiny_llm.generate(overflowing_model(), prompt(), 2)
            finally:
                monitor.remove()
        return [(d.call, d.role, d.inner, d.last_clean, repr(d.tensors)) for d in monitor.detections]

    assert names(OverflowMonitor(deferred=True)) == names(OverflowMonitor())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"include": 3}, "include must be a glob"),
        ({"exclude": ["", "x"]}, "exclude must be a glob"),
        ({"near": 0}, "near must be"),
        ({"saturation": "yes"}, "saturation must be True or False"),
        ({"stop": 1}, "stop must be True or False"),
        ({"dump": 5}, "dump must be a folder path"),
    ],
)
def test_bad_guard_options(options, message):
    with pytest.raises(ValueError, match=message):
        OverflowGuard(**options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_checks_are_read_back_once_per_forward_and_name_the_same_layer(monkeypatch):
    model = overflowing_model().cuda()
    ids = prompt().cuda()
    copies = []
    original = torch.Tensor.tolist

    def counting_tolist(self):
        copies.append(self.device.type)
        return original(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counting_tolist)
    deferred = OverflowGuard()
    run(deferred, model, ids)
    assert copies.count("cuda") == 1  # one read-back for the whole forward
    synchronous = OverflowGuard(stop=False, dump=None)
    synchronous.monitor.synchronous = True
    run(synchronous, model, ids)
    assert [repr(d) for d in deferred.detections] == [repr(d) for d in synchronous.detections]
    assert deferred.first.call.name == OVERFLOWING


def test_functions_that_kernels_runs_as_modules_are_not_module_calls():
    kernels = pytest.importorskip("kernels")

    @kernels.use_kernel_forward_from_hub("Overflowing")
    def overflowing(x):  # a module of its own class once decorated, as transformers 5's rotary
        return x * 1e30

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x):
            return overflowing(self.proj(x)).half()

    guard = OverflowGuard()
    with guard, torch.no_grad():
        Model()(torch.ones(2, 4))
    assert guard.monitor.counts.calls == 2  # the model and its Linear
    assert guard.first.call.name == "root"  # the function's overflow belongs to its caller
