"""Case discovery in ATB dumps (msit-spec §6.1, §6.2) and check_case on real .bin files."""

from __future__ import annotations

import pytest
import torch
from atb_layout import token_folder, write_op

from pytest_llmprec.dumps import load_dump
from pytest_llmprec.opcheck import CaseIndex, case_reference, check_case, find_cases, load_inputs
from pytest_llmprec.opcheck.check import ERROR, FAILED, PASSED
from pytest_llmprec.opcheck.run import plan_opcheck


def x(*shape, dtype=torch.float16, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.fixture
def layer_dump(tmp_path):
    """Token 0: a graph op ``2_Layer`` holding ``0_TestScaleOperation`` and ``1_TestScaleOperation``
    (the second wrong by 3%), then a top-level ``3_TestScaleOperation``."""
    token = token_folder(tmp_path)
    a, b, c = x(4, 32), x(4, 32, seed=1), x(8, seed=2)
    write_op(token / "2_Layer", [a], [a * 2])  # a graph op: no reference, not a case
    write_op(token / "2_Layer" / "0_TestScaleOperation", [a], [a * 2], {"factor": 2})
    write_op(token / "2_Layer" / "1_TestScaleOperation", [b], [b * 3.09], {"factor": 3})
    write_op(token / "3_TestScaleOperation", [c], [c * 0.5], {"factor": 0.5}, before=True)
    return token


def test_cases_have_msit_op_ids_in_execution_order(layer_dump):
    cases = find_cases(load_dump(layer_dump))
    assert [case.op_id for case in cases] == ["2_0", "2_1", "3"]
    assert [case.case_id for case in cases] == [f"{i}_TestScaleOperation" for i in ("2_0", "2_1", "3")]
    assert cases[0].params == {"factor": 2} and cases[0].op_param_text == '{"factor": 2}'
    assert cases[2].inputs[0].leaf == "before/intensor0"  # inputs from before/ when it exists
    assert [r.leaf for r in cases[2].outputs] == ["after/outtensor0"]
    assert cases[0].path == str(layer_dump / "2_Layer" / "0_TestScaleOperation")


def test_check_case_passes_the_right_op_and_fails_the_wrong_one(layer_dump):
    results = [check_case(case) for case in find_cases(load_dump(layer_dump))]
    assert [r.status for r in results] == [PASSED, FAILED, PASSED]
    failed = results[1]
    assert not failed.outputs[0].msit_verdict.passed and not failed.outputs[0].verdict.passed
    assert "tolerance_pass_rate" in failed.message and "msit opcheck standard: FAILED" in failed.message
    assert str(layer_dump / "2_Layer" / "1_TestScaleOperation") in failed.message


@pytest.mark.parametrize(
    ("ids", "names", "expected"),
    [("2", None, ["2_0", "2_1"]), ("2_1", None, ["2_1"]), ("3,2_0", None, ["2_0", "3"]), ("21", None, [])],
)
def test_id_filter_is_msits_regex(layer_dump, ids, names, expected):
    assert [case.op_id for case in find_cases(load_dump(layer_dump), ids=ids, names=names)] == expected


def test_name_filter_is_a_case_insensitive_substring(layer_dump):
    dump = load_dump(layer_dump)
    assert len(find_cases(dump, names="testscale")) == 3
    assert find_cases(dump, names="linear,rmsnorm") == []
    assert [c.op_id for c in find_cases(dump, ids="2", names=["SCALE"])] == ["2_0", "2_1"]


def test_one_case_is_found_without_scanning(layer_dump):
    index = CaseIndex(load_dump(layer_dump))
    case = index.case(0, "2_Layer/1_TestScaleOperation", 0)
    assert case is not None and case.op_id == "2_1"
    assert index.case(0, "2_Layer", 0) is None  # a graph op without reference
    assert index.case(0, "nope", 0) is None


def test_case_reference_from_given_inputs(layer_dump):
    (case,) = find_cases(load_dump(layer_dump), ids="2_0")
    (ref,) = case_reference(case, [torch.ones(3, dtype=torch.float16)])
    assert ref.dtype == torch.float64 and torch.equal(ref, torch.full((3,), 2.0, dtype=torch.float64))
    (own,) = case_reference(case, dtype="operator")
    assert own.dtype == torch.float16 and torch.equal(own, load_inputs(case)[0] * 2)


def test_in_place_outputs_are_the_after_inputs(tmp_path):
    token = token_folder(tmp_path)
    new, cache = x(2, 4), torch.zeros(5, 4, dtype=torch.float16)
    written = cache.clone()
    written[:2] = new
    write_op(token / "0_TestCacheOperation", [new, cache], [], {}, before=True, after_inputs=[new, written])
    (case,) = find_cases(load_dump(token))
    assert [r.leaf for r in case.outputs] == ["after/intensor1"]
    assert check_case(case).status == PASSED


def test_collective_op_takes_every_ranks_inputs_in_rank_order(tmp_path, registered):
    @registered("AllReduceOperation", required_params=("rankSize",))
    def _sum(inputs, params):
        return [sum(inputs)]

    parts = [x(6, seed=rank) for rank in range(3)]
    total = (parts[0].double() + parts[1].double() + parts[2].double()).to(torch.float16)
    for rank in range(3):
        folder = token_folder(tmp_path, rank=rank, pid=100 + rank) / "0_AllReduceOperation"
        write_op(folder, [parts[rank]], [total], {"rank": rank, "rankRoot": 0, "rankSize": 3})
    cases = find_cases(load_dump(tmp_path / "msit_dump_20261201_000000"))
    assert [case.case_id for case in cases] == [f"rank{r}/0_AllReduceOperation" for r in range(3)]
    assert [record.rank for record in cases[1].inputs] == [0, 1, 2]
    assert all(check_case(case).status == PASSED for case in cases)


def test_collective_op_with_a_missing_rank_is_bad_input(tmp_path, registered):
    registered("AllGatherOperation", required_params=("rankSize",))(
        lambda inputs, params: [torch.stack(inputs)]
    )
    folder = token_folder(tmp_path) / "0_AllGatherOperation"
    write_op(folder, [x(4)], [x(2, 4)], {"rank": 0, "rankRoot": 0, "rankSize": 2})
    (case,) = find_cases(load_dump(token_folder(tmp_path)))
    assert case.bad_input and "rank 1's dump is missing" in case.problem
    assert check_case(case).status == ERROR


# --- bad input ------------------------------------------------------------------------------------


def test_op_param_that_is_not_json_names_the_file(tmp_path):
    token = token_folder(tmp_path)
    write_op(token / "0_TestScaleOperation", [x(4)], [x(4)], "{factor: 2")
    (case,) = find_cases(load_dump(token))
    result = check_case(case)
    assert result.status == ERROR and "op_param.json is not readable JSON" in result.reason
    assert str(token / "0_TestScaleOperation" / "op_param.json") in result.reason


def test_op_param_of_the_wrong_type(tmp_path):
    token = token_folder(tmp_path)
    write_op(token / "0_TestScaleOperation", [x(4)], [x(4)], "[1, 2]")
    write_op(token / "1_TestScaleOperation", [x(4)], [x(4)], {"factor": "two"})
    first, second = (check_case(case) for case in find_cases(load_dump(token)))
    assert first.status == ERROR and "holds a list, expected a JSON object" in first.reason
    assert second.status == ERROR and "factor must be a number, got 'two'" in second.reason


def test_missing_parameter_and_missing_after_tensors(tmp_path):
    token = token_folder(tmp_path)
    write_op(token / "0_TestScaleOperation", [x(4)], [x(4)], {})
    write_op(token / "1_TestScaleOperation", [x(4)], [], {"factor": 1}, before=True)
    first, second = (check_case(case) for case in find_cases(load_dump(token)))
    assert first.status == "not checkable" and "needs the parameter(s) factor" in first.reason
    assert second.status == ERROR and "no after/outtensor*.bin files" in second.reason


def test_unreadable_tensor_file_is_an_error_naming_it(tmp_path):
    token = token_folder(tmp_path)
    folder = write_op(token / "0_TestScaleOperation", [x(64)], [x(64)], {"factor": 1})
    broken = folder / "after" / "outtensor0.bin"
    broken.write_bytes(broken.read_bytes()[:-40])
    (case,) = find_cases(load_dump(token))
    result = check_case(case)
    assert result.status == ERROR and str(broken) in result.reason


def test_a_dump_without_op_folders_has_nothing_to_check(tmp_path):
    token = token_folder(tmp_path)
    token.mkdir(parents=True)
    (token / "notes.txt").write_text("nothing here")
    plan = plan_opcheck(token)
    assert plan.cases == [] and "no operator tensors found" in plan.empty_reason


# --- actual outputs from a kernel -----------------------------------------------------------------


def test_a_kernel_per_op_type_produces_the_actual_outputs(layer_dump):
    from pytest_llmprec.opcheck import check_cases

    cases = find_cases(load_dump(layer_dump))
    calls = []

    def kernel(inputs, params, weights):
        calls.append(inputs[0].device.type)
        return inputs[0] * params["factor"]

    results = list(check_cases(cases, kernels={"TestScaleOperation": kernel}, device="cpu"))
    assert [r.status for r in results] == [PASSED, PASSED, PASSED]  # the wrong dumped output is not used
    assert calls == ["cpu"] * 3
    broken = check_case(cases[0], lambda inputs, params, weights: 1 / 0)
    assert broken.status == ERROR and "the kernel raised ZeroDivisionError" in broken.reason


def test_output_count_differs_fails_but_compares_the_common_outputs(layer_dump):
    (case, *_) = find_cases(load_dump(layer_dump))
    result = check_case(case, lambda inputs, params, weights: [inputs[0] * 2, inputs[0]])
    assert result.status == FAILED and result.count_differs
    assert "2 outputs for 1 reference outputs" in result.reason and result.outputs[0].verdict.passed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_kernel(layer_dump):
    (case, *_) = find_cases(load_dump(layer_dump))

    def kernel(inputs, params, weights):
        assert inputs[0].is_cuda
        return inputs[0] * params["factor"]

    assert check_case(case, kernel, device="cuda").status == PASSED


def test_msits_in_place_ops_use_their_after_inputs(tmp_path, registered):
    @registered("KvCacheOperation")
    def _kv(inputs, params):
        cache = inputs[2].clone()
        cache[0] = inputs[0]
        return [cache]

    token = token_folder(tmp_path)
    new, cache = x(4), torch.zeros(3, 4, dtype=torch.float16)
    written = cache.clone()
    written[0] = new
    after = [new, x(1), written]
    write_op(token / "0_KvCacheOperation", [new, x(1), cache], [], {}, before=True, after_inputs=after)
    (case,) = find_cases(load_dump(token))
    assert [r.leaf for r in case.outputs] == ["after/intensor2"]
    assert check_case(case).status == PASSED
