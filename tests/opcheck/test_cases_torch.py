"""Torch-dump cases from a real Hugging Face Llama (random weights) captured with register_hook:
an honest bfloat16 model passes every module case; a planted defect fails exactly its module."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from pytest_llmprec.capture import DumpConfig, register_hook  # noqa: E402
from pytest_llmprec.dumps import load_dump  # noqa: E402
from pytest_llmprec.opcheck import CaseIndex, case_reference, check_case, find_cases  # noqa: E402
from pytest_llmprec.opcheck.check import NOT_CHECKABLE, PASSED  # noqa: E402

LAYER1 = "root.model.layers.1"


def llama(dtype=torch.bfloat16, seed=0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # the norms are ones at init: make their weights visible to the check
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.to(dtype)


def capture(tmp_path, model, **config):
    ids = torch.randint(0, 128, (1, 12), generator=torch.Generator().manual_seed(1))
    with register_hook(model, DumpConfig(dump_path=tmp_path, **config)) as handle, torch.no_grad():
        model(ids)
    return load_dump(handle.dump_dir)


def statuses(dump, **options):
    return {case.node: check_case(case).status for case in find_cases(dump, **options)}


@pytest.fixture(scope="module")
def honest_dump(tmp_path_factory):
    return capture(tmp_path_factory.mktemp("honest"), llama(), dump_weight=True)


def test_every_module_of_an_honest_bf16_llama_passes(honest_dump):
    cases = find_cases(honest_dump)
    types = {case.op_type for case in cases}
    assert types == {"Embedding", "LlamaRotaryEmbedding", "LlamaRMSNorm", "Linear", "SiLUActivation"}
    assert len(cases) == 1 + 1 + 2 * (2 + 4 + 3 + 1) + 1 + 1
    assert [case.case_id for case in cases[:2]] == [
        "token0/root.model.embed_tokens",
        "token0/root.model.rotary_emb",
    ]
    results = [check_case(case) for case in cases]
    assert [r.case.node for r in results if r.status != PASSED] == []
    # msit's bf16 level (2**-8 relative) is below the double rounding of HF's RMSNorm (normalised
    # in float32, rounded to bf16, times the bf16 weight, rounded again): msit fails those honest cases
    msit_failed = {r.case.op_type for r in results if not r.outputs[0].msit_verdict.passed}
    assert msit_failed == {"LlamaRMSNorm"}


def test_model_tree_attributes_and_buffers_reach_the_cases(honest_dump):
    index = CaseIndex(honest_dump)
    norm = index.case(0, f"{LAYER1}.post_attention_layernorm")
    assert norm.params["variance_epsilon"] == 1e-6 and set(norm.weights) == {"weight"}
    rotary = index.case(0, "root.model.rotary_emb")
    assert rotary.params["attention_scaling"] == 1.0 and set(rotary.weights) == {"inv_freq"}
    linear = index.case(0, f"{LAYER1}.mlp.down_proj")
    assert linear.params == {"in_features": 160, "out_features": 64} and set(linear.weights) == {"weight"}


def test_case_reference_on_other_inputs(honest_dump):
    case = CaseIndex(honest_dump).case(0, f"{LAYER1}.mlp.act_fn")
    x = torch.linspace(-4, 4, 9, dtype=torch.bfloat16)
    (ref,) = case_reference(case, [x])
    assert torch.allclose(ref, F.silu(x.double()), rtol=1e-12)


def test_a_wrong_activation_in_one_layer_fails_exactly_that_case(tmp_path):
    model = llama()
    act = model.model.layers[1].mlp.act_fn
    act.forward = lambda x: F.gelu(x, approximate="tanh")  # still a SiLUActivation by class
    found = statuses(capture(tmp_path, model, dump_weight=True))
    assert [node for node, status in found.items() if status != PASSED] == [f"{LAYER1}.mlp.act_fn"]


def test_a_scaled_norm_weight_fails_its_case_against_the_reference_model(tmp_path):
    honest, model = llama(), llama()
    with torch.no_grad():
        model.model.layers[1].post_attention_layernorm.weight.mul_(1.05)
    dump = capture(tmp_path, model)  # no weights dumped: they come from the honest model
    found = statuses(dump, model=honest)
    assert [node for node, status in found.items() if status != PASSED] == [
        f"{LAYER1}.post_attention_layernorm"
    ]


def test_rotary_buffer_rounded_to_bf16_fails_against_the_float32_model(tmp_path):
    honest = llama(dtype=torch.float32)
    model = llama(dtype=torch.float32).to(torch.bfloat16)  # rounds inv_freq too
    found = statuses(capture(tmp_path, model), model=honest, names="rotary")
    assert found == {"root.model.rotary_emb": "failed"}


def test_modules_without_weights_are_not_checkable_with_the_reason(tmp_path):
    dump = capture(tmp_path, llama())
    results = {case.node: check_case(case) for case in find_cases(dump)}
    down = results[f"{LAYER1}.mlp.down_proj"]
    assert down.status == NOT_CHECKABLE
    assert f"{LAYER1}.mlp.down_proj.weight not in the dump's weights folder" in down.reason
    assert "dump_weight=True" in down.reason
    assert results[f"{LAYER1}.mlp.act_fn"].status == PASSED  # activations need no weights


def test_dump_without_attributes_is_not_checkable(honest_dump, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(honest_dump.root, copy)
    (tree_path,) = copy.rglob("model_tree.json")
    tree = json.loads(tree_path.read_text())

    def strip(node):
        node.pop("attributes", None)
        for child in node["children"]:
            strip(child)

    strip(tree)
    tree_path.write_text(json.dumps(tree))
    case = CaseIndex(load_dump(copy)).case(0, "root.model.norm")
    assert case.problem.startswith("not checkable: LlamaRMSNorm needs the attribute(s) variance_epsilon")
    assert "records no module attributes" in case.problem
    assert check_case(case).status == NOT_CHECKABLE


@pytest.mark.parametrize("weights", [False, True])
def test_lacking_weights_is_told_without_building_the_cases(tmp_path, weights):
    dump = capture(tmp_path, llama(), dump_weight=weights)
    index = CaseIndex(dump)
    nodes = {(r.token, r.node, r.rank) for r in dump.records if r.token != "weights"}
    lacking = {node for node in nodes if index.lacks_weights(*node)}
    built = {node: index.case(*node) for node in nodes}
    unweighted = {node for node, case in built.items() if case and "weights folder" in (case.problem or "")}
    assert lacking == unweighted
    assert bool(lacking) != weights  # the Linears, norms and rotary embedding without their weights


NO_TORCH_REFERENCE = """
import sys
from pytest_llmprec.pipeline import CompareSettings, Comparison
from pytest_llmprec.pipeline.references import References

comparison = Comparison(CompareSettings(golden=sys.argv[1], my=sys.argv[1]))
pairs = comparison.match().pairs
linear = next(p for p in pairs if p.key.endswith("mlp.down_proj/output"))
assert References(comparison.dump("golden"), pairs).distance(linear) is None
assert "torch" not in sys.modules, "torch imported"
"""


def test_a_linear_without_weights_has_no_reference_and_costs_no_torch_import(tmp_path):
    import subprocess
    import sys

    dump = capture(tmp_path, llama())
    run = subprocess.run(
        [sys.executable, "-c", NO_TORCH_REFERENCE, str(dump.root)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
