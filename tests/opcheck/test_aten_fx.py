"""aten references and FX-dump cases: fx_dump_backend's node sidecar, torchair dumps without it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.capture import fx_dump_backend
from pytest_llmprec.dumps import load_dump
from pytest_llmprec.formats.fx_sidecar import NODES_FOLDER, decode_value, encode_call, read_sidecar
from pytest_llmprec.opcheck import NotCheckable, OpcheckError, check_case, find_cases, reference
from pytest_llmprec.opcheck.check import NOT_CHECKABLE, PASSED
from pytest_llmprec.testing.strategies import activations

T0, T1 = {"tensor": 0}, {"tensor": 1}


@given(
    a=activations(
        st.tuples(st.integers(1, 6), st.integers(1, 9)), st.sampled_from([torch.bfloat16, torch.float16])
    ),
    k=st.integers(1, 7),
)
def test_mm_is_float64_matmul(a, k):
    b = torch.randn(a.shape[1], k).to(a.dtype)
    (ours,) = reference("aten.mm.default", [a, b], dtype=torch.float64)
    np.testing.assert_allclose(ours.numpy(), a.double().numpy() @ b.double().numpy(), rtol=1e-12, atol=1e-12)
    assert reference("aten.mm.default", [a, b])[0].dtype == a.dtype


def test_recorded_arguments_and_dtype_arguments():
    x = torch.randn(3, 4).to(torch.bfloat16)
    params = {"args": [T0, T1], "kwargs": {"alpha": 3}}
    (added,) = reference("aten.add.Tensor", [x, x], params, dtype=torch.float64)
    assert torch.equal(added, x.double() * 4)
    params = {
        "args": [T0],
        "kwargs": {"dtype": {"dtype": "torch.float16"}},
        "output_dtypes": ["torch.float16"],
    }
    (copied,) = reference("aten._to_copy.default", [x], params, dtype=torch.float64)
    assert copied.dtype == torch.float64 and torch.equal(
        copied, x.double()
    )  # the rounding is what is checked
    assert reference("aten._to_copy.default", [x], params)[0].dtype == torch.float16
    (summed,) = reference("aten.sum.dim_IntList", [x], {"args": [T0, [1]], "kwargs": {}}, dtype=torch.float64)
    assert torch.allclose(summed, x.double().sum(1), rtol=1e-15)


def test_integer_ops_stay_integer_and_inputs_are_not_modified():
    a = torch.tensor([2**27 + 1, 3])  # its square is not a float64 value: exact only in integers
    (out,) = reference("aten.mul.Tensor", [a, a], dtype=torch.float64)
    assert out.dtype == torch.int64 and out.tolist() == [(2**27 + 1) ** 2, 9]
    x = torch.ones(3)
    reference("aten.add_.Tensor", [x, x], {"args": [T0, T1], "kwargs": {}})
    assert torch.equal(x, torch.ones(3))


def test_ops_that_cannot_be_recomputed_say_why():
    x = torch.randn(3)
    with pytest.raises(NotCheckable, match=r"aten\.bernoulli\.default is a random op"):
        reference("aten.bernoulli.default", [x], {"args": [T0], "kwargs": {}})
    with pytest.raises(NotCheckable, match="uninitialised"):
        reference("aten.empty_like.default", [x], {"args": [T0], "kwargs": {}})
    with pytest.raises(NotCheckable, match=r"arguments not recorded \(aten.add.Tensor takes alpha\)"):
        reference("aten.add.Tensor", [x, x])
    with pytest.raises(NotCheckable, match="was not recorded"):
        reference("aten.add.Tensor", [x, x], {"args": [T0, T1], "kwargs": {"alpha": {"unknown": "<obj>"}}})
    with pytest.raises(OpcheckError, match="tensor index 5 out of range"):
        reference("aten.mm.default", [x, x], {"args": [T0, {"tensor": 5}], "kwargs": {}})


def test_sidecar_values_round_trip():
    x = torch.ones(2)
    args, kwargs, count = encode_call(
        (x, [1, 2], float("inf"), torch.device("cpu")),
        {"dtype": torch.bfloat16, "memory_format": torch.contiguous_format, "other": (x, None)},
    )
    assert count == 2
    decoded = decode_value(json.loads(json.dumps(args)), [x, x])
    assert decoded[1:] == [[1, 2], float("inf"), torch.device("cpu")]
    kw = decode_value({"dict": json.loads(json.dumps(kwargs))}, [x, x])
    assert kw["dtype"] is torch.bfloat16 and kw["memory_format"] is torch.contiguous_format
    assert kw["other"][0] is x


def block(x, w):
    h = torch.nn.functional.silu(x @ w)
    return torch.softmax(h * 0.5, dim=-1).sum(dim=-1, keepdim=True) + h.mean()


@pytest.fixture(scope="module")
def fx_dump(tmp_path_factory):
    torch._dynamo.reset()
    root = tmp_path_factory.mktemp("fx")
    compiled = torch.compile(block, backend=fx_dump_backend(root, model_name="block"))
    x = torch.randn(4, 16).to(torch.bfloat16)
    w = torch.randn(16, 8).to(torch.bfloat16)
    with torch.no_grad():
        compiled(x, w)
    torch._dynamo.reset()
    return root


def test_backend_writes_the_sidecar_with_original_dtypes(fx_dump):
    (sidecar,) = (fx_dump / NODES_FOLDER).rglob("*.json")
    assert sidecar.relative_to(fx_dump / NODES_FOLDER).as_posix() == "worldsize1_global_rank0/block/0.json"
    nodes = read_sidecar(sidecar)
    (mm,) = (entry for key, entry in nodes.items() if entry["target"] == "aten.mm.default")
    assert mm["inputs"] == ["torch.bfloat16", "torch.bfloat16"] and mm["outputs"] == ["torch.bfloat16"]
    assert mm["args"] == [T0, T1] and mm["kwargs"] == {}
    npy = sorted((fx_dump / "msit_fx_dump").rglob("*mm*.npy"))
    assert npy and all(np.load(path).dtype == np.float32 for path in npy)  # what the sidecar restores


def test_fx_cases_of_an_honest_compiled_bf16_function_pass(fx_dump):
    cases = find_cases(load_dump(fx_dump / "msit_fx_dump"))
    targets = {case.op_type for case in cases}
    assert {
        "aten.mm.default",
        "aten.silu.default",
        "aten._softmax.default",
        "aten.sum.dim_IntList",
    } <= targets
    assert all(
        case.input_dtypes and case.input_dtypes[0] == "torch.bfloat16"
        for case in cases
        if case.op_type == "aten.mm.default"
    )
    results = [check_case(case) for case in cases]
    assert {r.case.op_type: r.status for r in results if r.status != PASSED} == {}
    assert all(
        str(r.outputs[0].result.my_dtype) == "torch.bfloat16"
        for r in results
        if r.case.op_type == "aten.mm.default"
    )


def test_torchair_dump_without_sidecar_checks_tensor_only_ops(fx_dump, tmp_path):
    copy = tmp_path / "msit_fx_dump"
    shutil.copytree(fx_dump / "msit_fx_dump", copy)
    results = {case.op_type: check_case(case) for case in find_cases(load_dump(copy))}
    mm = results["aten.mm.default"]
    assert mm.status == PASSED  # judged as bf16: float32 files holding only bf16 values
    assert mm.outputs[0].result.my_dtype == "torch.bfloat16"
    softmax = results["aten._softmax.default"]
    assert softmax.status == NOT_CHECKABLE and "arguments not recorded" in softmax.reason


def test_broken_sidecar_is_bad_input_naming_it(fx_dump, tmp_path):
    shutil.copytree(fx_dump, tmp_path / "dump")
    (sidecar,) = (tmp_path / "dump" / NODES_FOLDER).rglob("*.json")
    sidecar.write_text("{not json")
    (case, *_) = find_cases(load_dump(tmp_path / "dump" / "msit_fx_dump"))
    result = check_case(case)
    assert result.status == "error" and str(sidecar) in result.reason
