"""register_hook + DumpConfig on the tiny Llama model: the msit PyTorch layout, file by file."""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import pytest
import tiny_llm
import torch
import torch.nn.functional as F
from capture_helpers import completion_order, hidden_files, load, names
from torch import nn

from pytest_llmprec import DumpConfig, register_hook

PROCESS_FILES = {"model_tree.json", "execution_order.json"}


def folders_in_order(order: list[str]) -> list[str]:
    """The folder of each call: the name, then ``name@1``, ``name@2`` for later calls in a token."""
    seen: dict[str, int] = {}
    folders = []
    for name in order:
        count = seen.get(name, 0)
        seen[name] = count + 1
        folders.append(name if count == 0 else f"{name}@{count}")
    return folders


def expected_attributes(module: nn.Module) -> dict:
    """Public scalar attributes as the tree must record them (tuples as lists, ``training`` left out)."""
    plain = (bool, int, float, str, type(None))
    found = {}
    for key, value in module.__dict__.items():
        if key.startswith("_") or key == "training":
            continue
        if isinstance(value, plain):
            found[key] = value
        elif isinstance(value, tuple) and all(isinstance(item, plain) for item in value):
            found[key] = list(value)
    return found


def expected_tree(module: nn.Module, name: str = "root") -> dict:
    children = [expected_tree(child, f"{name}.{attr}") for attr, child in module.named_children()]
    return {
        "name": name,
        "type": type(module).__name__,
        "attributes": expected_attributes(module),
        "children": children,
    }


def test_model_tree_records_module_hyperparameters(tmp_path, model, prompt):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path))
    tree = json.loads((handle.dump_dir / "model_tree.json").read_text())
    nodes = {}
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes[node["name"]] = node
        pending += node["children"]
    assert nodes["root.lm_head"]["attributes"] == {
        "in_features": model.lm_head.in_features,
        "out_features": model.lm_head.out_features,
    }
    norm = nodes["root.model.norm"]["attributes"]
    assert norm["eps"] == model.model.norm.eps and "training" not in norm


def run(model: nn.Module, prompt: torch.Tensor, config: DumpConfig, steps: int = 1):
    with register_hook(model, config) as handle:
        ids = tiny_llm.generate(model, prompt, steps)
    return handle, ids


def test_default_config_dumps_every_module_of_token_0(tmp_path, model, prompt):
    order = completion_order(model, lambda: model(prompt))
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path), steps=3)
    after = dt.datetime.now(dt.timezone.utc)

    (root,) = tmp_path.iterdir()
    stamp = re.fullmatch(r"msit_dump_(\d{8}_\d{6})", root.name).group(1)
    assert before <= dt.datetime.strptime(stamp, "%Y%m%d_%H%M%S").replace(tzinfo=dt.timezone.utc) <= after
    process = root / "torch_tensors" / f"cpu_{os.getpid()}"
    assert (handle.root_dir, handle.dump_dir) == (root, process)
    assert names(process) == {"0"} | PROCESS_FILES
    folders = folders_in_order(order)
    assert "root.model.layers.0.self_attn.rotary_emb@1" in folders
    assert names(process / "0") == set(folders)
    for folder in folders:
        assert names(process / "0" / folder) == {"input_0.pth", "output.pth"}, folder
    assert json.loads((process / "execution_order.json").read_text()) == {"0": folders}
    assert json.loads((process / "model_tree.json").read_text()) == expected_tree(model)
    assert hidden_files(tmp_path) == []


def test_each_module_output_is_its_forward_of_the_dumped_input(tmp_path, model, prompt):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path))
    token = handle.dump_dir / "0"
    assert torch.equal(load(token / "root" / "input_0.pth"), prompt)
    with torch.no_grad():
        assert torch.equal(load(token / "root" / "output.pth"), model(prompt))
        modules = dict(model.named_modules(prefix="root"))
        for folder in token.iterdir():
            module = modules[folder.name.split("@")[0]]
            recomputed = module(load(folder / "input_0.pth"))
            assert torch.equal(recomputed, load(folder / "output.pth")), folder.name


def test_token_range_picks_root_forward_calls(tmp_path, model, prompt):
    handle, ids = run(model, prompt, DumpConfig(dump_path=tmp_path, token_range=[1, 3]), steps=4)
    assert names(handle.dump_dir) == {"1", "3"} | PROCESS_FILES
    length = prompt.shape[1]
    assert torch.equal(load(handle.dump_dir / "1" / "root" / "input_0.pth"), ids[:, : length + 1])
    assert torch.equal(load(handle.dump_dir / "3" / "root" / "input_0.pth"), ids[:, : length + 3])
    order = json.loads((handle.dump_dir / "execution_order.json").read_text())
    assert sorted(order) == ["1", "3"]


def test_module_list_keeps_instances_of_the_classes(tmp_path, model, prompt):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, module_list=[nn.Linear]))
    linear = {name for name, module in model.named_modules(prefix="root") if isinstance(module, nn.Linear)}
    assert len(linear) == 15
    assert names(handle.dump_dir / "0") == linear


@pytest.mark.parametrize(
    ("pattern", "selected"),
    [
        ("root.model.layers.1.*", lambda name: name.startswith("root.model.layers.1.")),
        ("*_proj", lambda name: name.endswith("_proj")),
        ("root.lm_head", lambda name: name == "root.lm_head"),
    ],
)
def test_layer_name_wildcards_match_whole_names(tmp_path, model, prompt, pattern, selected):
    order = completion_order(model, lambda: model(prompt))
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, layer_name=pattern))
    expected = {folder for name, folder in zip(order, folders_in_order(order), strict=True) if selected(name)}
    assert expected
    assert names(handle.dump_dir / "0") == expected


def test_layer_name_treats_regex_characters_literally(tmp_path, model, prompt):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, layer_name="root.model.layers.[01]*"))
    assert names(handle.dump_dir) == PROCESS_FILES


@pytest.mark.parametrize(("tensor_part", "expected"), [(0, {"input_0.pth"}), (1, {"output.pth"})])
def test_tensor_part_selects_inputs_or_outputs(tmp_path, model, prompt, tensor_part, expected):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, tensor_part=tensor_part))
    folders = list((handle.dump_dir / "0").iterdir())
    assert len(folders) > 30
    for folder in folders:
        assert names(folder) == expected


def _statistics(tensor: torch.Tensor) -> list[float]:
    values = tensor.detach().to(torch.float64)
    return [values.max().item(), values.min().item(), values.mean().item(), values.norm().item()]


def _check_statistics_file(folder, tensors: dict[str, torch.Tensor]) -> None:
    lines = (folder / "statistics.csv").read_text().splitlines()
    assert lines[0] == "NodeName,NodeType,InputOutput,Index,DataType,Shape,Max,Min,Mean,L2Norm"
    rows = [line.split(",", 5) for line in lines[1:]]
    assert [row[2] for row in rows] == ["Input", "Output"]
    for row, (stem, tensor) in zip(rows, tensors.items(), strict=True):
        node, node_type, _, index, dtype, rest = row
        shape, *values = rest.rsplit(",", 4)
        assert (node, index, dtype, shape) == (
            folder.name,
            "0",
            str(tensor.dtype),
            f'"{tuple(tensor.shape)}"',
        )
        assert node_type, stem
        assert [float(v) for v in values] == pytest.approx(_statistics(tensor), rel=1e-5, abs=1e-6)


def test_statistics_mode_2_rows_match_the_dumped_tensors(tmp_path, model, prompt):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, dump_statistics_mode=2))
    folders = list((handle.dump_dir / "0").iterdir())
    for folder in folders:
        assert names(folder) == {"input_0.pth", "output.pth", "statistics.csv"}
        tensors = {stem: load(folder / f"{stem}.pth") for stem in ("input_0", "output")}
        _check_statistics_file(folder, tensors)
    assert (
        (handle.dump_dir / "0" / "root.lm_head" / "statistics.csv")
        .read_text()
        .splitlines()[1]
        .startswith("root.lm_head,Linear,Input,0,torch.float32")
    )


def test_statistics_mode_1_writes_no_tensor_and_describes_the_model(tmp_path, prompt):
    model = tiny_llm.build_model(seed=1, dtype=torch.bfloat16)
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def record(name: str, args: tuple, output: torch.Tensor) -> None:
        inputs.setdefault(name, args[0])
        outputs.setdefault(name, output)

    hooks = [
        module.register_forward_hook(lambda m, a, o, name=name: record(name, a, o))
        for name, module in model.named_modules(prefix="root")
    ]
    with torch.no_grad():
        model(prompt)
    for hook in hooks:
        hook.remove()
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, dump_statistics_mode=1))
    assert list(handle.dump_dir.rglob("*.pth")) == []
    for name in inputs:
        folder = handle.dump_dir / "0" / name
        assert names(folder) == {"statistics.csv"}
        _check_statistics_file(folder, {"input_0": inputs[name], "output": outputs[name]})
    assert "torch.bfloat16" in (handle.dump_dir / "0" / "root.lm_head" / "statistics.csv").read_text()


def test_bf16_tensors_are_saved_as_bf16(tmp_path, prompt):
    model = tiny_llm.build_model(seed=0, dtype=torch.bfloat16)
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, layer_name="root"))
    output = load(handle.dump_dir / "0" / "root" / "output.pth")
    assert output.dtype == torch.bfloat16
    with torch.no_grad():
        assert torch.equal(output, model(prompt))


def test_analyze_appends_tensor_analyze_csv(tmp_path, model, prompt):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, analyze=True, layer_name="*mlp.*"))
    lines = (handle.root_dir / "tensor_analyze.csv").read_text().splitlines()
    assert lines[0] == "Node Name,Node Type,Tensor Path,dtype,shape,max,min,variance,mean"
    assert len(lines) == 1 + 2 * 8
    for line in lines[1:]:
        node, node_type, path, dtype, rest = line.split(",", 4)
        maximum, minimum, variance, mean = (float(v) for v in rest.rsplit(",", 4)[1:])
        tensor = load(path).double()
        assert path.startswith(str(handle.dump_dir / "0" / node) + "/")
        assert (dtype, node_type in ("Linear", "SiLU")) == ("torch.float32", True)
        expected = [tensor.max().item(), tensor.min().item(), tensor.var().item(), tensor.mean().item()]
        assert [maximum, minimum, variance, mean] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_last_logits_keeps_only_the_final_output_of_each_token(tmp_path, model, prompt):
    config = DumpConfig(dump_path=tmp_path, token_range=[0, 1, 2], dump_last_logits=True)
    handle, ids = run(model, prompt, config, steps=3)
    assert names(handle.dump_dir) == {"0", "1", "2"} | PROCESS_FILES
    for token in range(3):
        folder = handle.dump_dir / str(token) / "root.lm_head"
        assert names(handle.dump_dir / str(token)) == {"root.lm_head"}
        assert names(folder) == {"output.pth"}
        with torch.no_grad():
            expected = model(ids[:, : prompt.shape[1] + token])
        assert torch.equal(load(folder / "output.pth"), expected)


def test_last_logits_ignores_api_mode_and_keeps_statistics(tmp_path, model, prompt):
    config = DumpConfig(
        dump_path=tmp_path, dump_last_logits=True, mode=["module", "api"], dump_statistics_mode=2
    )
    handle, _ = run(model, prompt, config)
    folder = handle.dump_dir / "0" / "root.lm_head"
    assert names(handle.dump_dir / "0") == {"root.lm_head"}
    assert names(folder) == {"output.pth", "statistics.csv"}
    row = (folder / "statistics.csv").read_text().splitlines()[1]
    assert row.startswith('root.lm_head,Linear,Output,0,torch.float32,"(1, 6, 256)",')


def test_dump_weight_saves_parameters_and_buffers_once(tmp_path, model, prompt):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, dump_weight=True), steps=2)
    parameters = dict(model.named_parameters(prefix="root"))
    buffers = dict(model.named_buffers(prefix="root"))
    assert any(name.endswith(".cos") for name in buffers)  # non-persistent rotary buffers
    assert names(handle.dump_dir / "weights") == {f"{name}.pth" for name in {**parameters, **buffers}}
    for name, tensor in {**parameters, **buffers}.items():
        assert torch.equal(load(handle.dump_dir / "weights" / f"{name}.pth"), tensor.detach())


def test_dump_weight_is_filtered_by_layer_name(tmp_path, model, prompt):
    config = DumpConfig(dump_path=tmp_path, dump_weight=True, layer_name="root.model.layers.1.mlp*")
    handle, _ = run(model, prompt, config)
    assert names(handle.dump_dir / "weights") == {
        f"root.model.layers.1.mlp.{proj}.weight.pth" for proj in ("gate_proj", "up_proj", "down_proj")
    }


def test_api_mode_dumps_listed_functional_calls(tmp_path, model, prompt):
    apis = [F.silu, F.scaled_dot_product_attention]
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, mode="api", api_list=apis))
    layers = [f"root.model.layers.{i}" for i in range(2)]
    silu = [f"{layer}.mlp.act_fn.silu" for layer in layers]
    attention = [f"{layer}.self_attn.scaled_dot_product_attention" for layer in layers]
    assert names(handle.dump_dir / "0") == set(silu + attention)
    for folder in silu:
        files = handle.dump_dir / "0" / folder
        assert names(files) == {"input_0.pth", "output.pth"}
        assert torch.equal(load(files / "output.pth"), F.silu(load(files / "input_0.pth")))
    for folder in attention:
        files = handle.dump_dir / "0" / folder
        assert names(files) == {"input_0.pth", "input_1.pth", "input_2.pth", "output.pth"}
        q, k, v = (load(files / f"input_{i}.pth") for i in range(3))
        assert torch.equal(
            load(files / "output.pth"), F.scaled_dot_product_attention(q, k, v, is_causal=True)
        )


def test_api_and_module_mode_together_count_repeated_api_calls(tmp_path, model, prompt):
    config = DumpConfig(
        dump_path=tmp_path, mode=["module", "api"], api_list=[torch.cat], layer_name="*rotary_emb*"
    )
    handle, _ = run(model, prompt, config)
    rotary = [f"root.model.layers.{i}.self_attn.rotary_emb" for i in range(2)]
    expected = {f"{r}{suffix}" for r in rotary for suffix in ("", "@1", ".cat", ".cat@1")}
    assert names(handle.dump_dir / "0") == expected


class Pair(nn.Module):
    def forward(self, x, bias):
        return x, (x + bias[0], {"twice": 2 * x, "note": "not a tensor"})


class Repeats(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.pair = Pair()

    def forward(self, x, *, scale, extras=()):
        y = self.lin(x)
        y = self.lin(torch.matmul(y, scale))
        y = self.lin(torch.matmul(y, scale))
        return self.pair(y, bias=extras)


def test_repeated_calls_kwargs_and_nested_outputs(tmp_path):
    model = Repeats()
    x, scale = torch.randn(2, 4), torch.randn(4, 4)
    extras = (torch.ones(4), torch.zeros(1))
    config = DumpConfig(dump_path=tmp_path, mode=["module", "api"], api_list=[torch.matmul])
    with register_hook(model, config) as handle, torch.no_grad():
        out = model(x, scale=scale, extras=extras)
    token = handle.dump_dir / "0"
    assert names(token) == {
        "root",
        "root.lin",
        "root.lin@1",
        "root.lin@2",
        "root.matmul",
        "root.matmul@1",
        "root.pair",
    }
    assert names(token / "root") == {
        "input_0.pth",
        "kwarg_scale.pth",
        "kwarg_extras_0.pth",
        "kwarg_extras_1.pth",
        "output_0.pth",
        "output_1_0.pth",
        "output_1_1_0.pth",
    }
    assert names(token / "root.pair") == names(token / "root") - {"kwarg_scale.pth"} - {
        "kwarg_extras_0.pth",
        "kwarg_extras_1.pth",
    } | {"kwarg_bias_0.pth", "kwarg_bias_1.pth"}
    assert torch.equal(load(token / "root" / "kwarg_extras_1.pth"), extras[1])
    assert torch.equal(load(token / "root" / "output_1_1_0.pth"), out[1][1]["twice"])
    with torch.no_grad():
        first = model.lin(x)
        second = model.lin(first @ scale)
    assert torch.equal(load(token / "root.lin" / "output.pth"), first)
    assert torch.equal(load(token / "root.lin@1" / "input_0.pth"), first @ scale)
    assert torch.equal(load(token / "root.lin@1" / "output.pth"), second)
    assert torch.equal(load(token / "root.matmul@1" / "input_0.pth"), second)
    order = json.loads((handle.dump_dir / "execution_order.json").read_text())["0"]
    assert order == [
        "root.lin",
        "root.matmul",
        "root.lin@1",
        "root.matmul@1",
        "root.lin@2",
        "root.pair",
        "root",
    ]


def test_inputs_are_captured_before_forward_changes_them(tmp_path):
    class InPlace(nn.Module):
        def forward(self, x):
            return x.mul_(2)

    model = InPlace()
    with register_hook(model, DumpConfig(dump_path=tmp_path)) as handle:
        model(torch.ones(3))
    assert torch.equal(load(handle.dump_dir / "0" / "root" / "input_0.pth"), torch.ones(3))
    assert torch.equal(load(handle.dump_dir / "0" / "root" / "output.pth"), torch.full((3,), 2.0))


def test_a_tensor_seen_again_unchanged_is_hard_linked(tmp_path, model, prompt):
    handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path))
    token = handle.dump_dir / "0"

    def file(folder: str, name: str):
        return token / folder / f"{name}.pth"

    attention = "root.model.layers.0.self_attn"
    assert file("root.lm_head", "output").samefile(file("root", "output"))
    assert file(f"{attention}.q_proj", "input_0").samefile(file(f"{attention}.k_proj", "input_0"))
    assert file(attention, "input_0").samefile(file(f"{attention}.v_proj", "input_0"))
    assert not file("root.lm_head", "output").samefile(file("root.lm_head", "input_0"))
    assert not file(f"{attention}.rotary_emb", "output").samefile(file(f"{attention}.rotary_emb@1", "output"))


def test_a_tensor_changed_in_place_is_written_again(tmp_path):
    class Producer(nn.Module):
        def forward(self, x):
            return x + 1

    class Doubler(nn.Module):
        def forward(self, x):
            return x.mul_(2)

    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p, self.q = Producer(), Doubler()

        def forward(self, x):
            return self.q(self.p(x))

    model = Chain()
    with register_hook(model, DumpConfig(dump_path=tmp_path)) as handle:
        model(torch.zeros(3))
    token = handle.dump_dir / "0"
    assert torch.equal(load(token / "root.p" / "output.pth"), torch.ones(3))
    assert torch.equal(load(token / "root.q" / "input_0.pth"), torch.ones(3))
    assert torch.equal(load(token / "root.q" / "output.pth"), torch.full((3,), 2.0))
    assert (token / "root.q" / "input_0.pth").samefile(token / "root.p" / "output.pth")
    assert not (token / "root.q" / "output.pth").samefile(token / "root.p" / "output.pth")
    assert (token / "root" / "output.pth").samefile(token / "root.q" / "output.pth")


def test_inference_mode_tensors_are_copied(tmp_path, model, prompt):
    with register_hook(model, DumpConfig(dump_path=tmp_path)) as handle, torch.inference_mode():
        logits = model(prompt)
    token = handle.dump_dir / "0"
    assert torch.equal(load(token / "root" / "output.pth"), logits)
    assert torch.equal(load(token / "root.lm_head" / "output.pth"), logits)
    assert not (token / "root.lm_head" / "output.pth").samefile(token / "root" / "output.pth")


def test_sparse_tensors_are_dumped(tmp_path):
    class Densify(nn.Module):
        def forward(self, x):
            return x.to_dense() * 2

    model = Densify()
    sparse = torch.eye(3).to_sparse()
    with register_hook(model, DumpConfig(dump_path=tmp_path, dump_statistics_mode=2)) as handle:
        model(sparse)
    folder = handle.dump_dir / "0" / "root"
    assert torch.equal(load(folder / "input_0.pth").to_dense(), torch.eye(3))
    assert ',Input,0,torch.float32,"(3, 3)",1.0,0.0,' in (folder / "statistics.csv").read_text()


def test_removed_handle_stops_dumping_and_handles_are_independent(tmp_path, model, prompt):
    config = DumpConfig(dump_path=tmp_path, token_range=[0, 1])
    first = register_hook(model, config)
    second = register_hook(model, DumpConfig(dump_path=tmp_path, token_range=[0], layer_name="root"))
    assert first.dump_dir != second.dump_dir
    with torch.no_grad():
        model(prompt)
    first.remove()
    first.remove()
    with torch.no_grad():
        model(prompt)
    second.remove()
    assert all(not module._forward_hooks and not module._forward_pre_hooks for module in model.modules())
    assert names(first.dump_dir) == {"0"} | PROCESS_FILES
    assert names(second.dump_dir / "0") == {"root"}
    with torch.no_grad():
        model(prompt)
    assert names(first.dump_dir) == {"0"} | PROCESS_FILES


def test_device_id_that_does_not_match_dumps_nothing(tmp_path, model, prompt):
    with pytest.warns(UserWarning, match="nothing will be dumped"):
        handle, _ = run(model, prompt, DumpConfig(dump_path=tmp_path, device_id=0))
    assert names(handle.dump_dir) == PROCESS_FILES


def test_modules_called_outside_the_root_forward_are_not_dumped(tmp_path, model, prompt):
    with register_hook(model, DumpConfig(dump_path=tmp_path, token_range=[0, 1])) as handle, torch.no_grad():
        model.lm_head(torch.randn(1, 64))
        model(prompt)
    assert names(handle.dump_dir) == {"0"} | PROCESS_FILES
    assert torch.equal(load(handle.dump_dir / "0" / "root" / "input_0.pth"), prompt)


def test_a_forward_that_raises_leaves_the_dumper_consistent(tmp_path, model, prompt):
    with register_hook(model, DumpConfig(dump_path=tmp_path, token_range=[0, 1])) as handle, torch.no_grad():
        with pytest.raises(IndexError):
            model(torch.tensor([[10_000]]))
        model(prompt)
    assert torch.equal(load(handle.dump_dir / "1" / "root" / "input_0.pth"), prompt)
    assert names(handle.dump_dir / "1" / "root") == {"input_0.pth", "output.pth"}
