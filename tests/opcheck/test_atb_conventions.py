"""Properties every ATB reference shares: only OpcheckError on bad input, documented, registry hooks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_llmprec.opcheck import OpcheckError, op_types, reference, register_op
from pytest_llmprec.opcheck import atb as atb_package
from pytest_llmprec.opcheck.registry import INPUT_DTYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "opcheck.md"
ATB_OPS = sorted(
    name
    for module in (getattr(atb_package, m) for m in atb_package.__all__)
    for name in vars(module).values()
    if isinstance(name, str) and name.endswith("Operation")
)

KEYS = [
    "activationType",
    "geluMode",
    "scale",
    "dim",
    "elewiseType",
    "outTensorType",
    "layerType",
    "headNum",
    "kvHeadNum",
    "calcType",
    "maskType",
    "kvcacheCfg",
    "quantType",
    "hasQuantOffset",
    "compressType",
    "transposeA",
    "transposeB",
    "hasBias",
    "outDataType",
    "rotaryCoeff",
    "splitNum",
    "splitDim",
    "splitSizes",
    "concatDim",
    "axis",
    "batchDims",
    "offsets",
    "size",
    "perm",
    "transdataType",
    "outCrops",
    "multiples",
    "stride",
    "offset",
    "starts",
    "ends",
    "strides",
    "axes",
    "reduceType",
    "num",
    "withMask",
    "value",
    "outDim",
    "depth",
    "indexType",
    "topkExpertNum",
    "cumSumNum",
    "numSamples",
    "randSeed",
    "topk",
    "randSeeds",
    "topkToppSamplingType",
    "rank",
    "rankRoot",
    "rankSize",
    "allReduceType",
    "backend",
    "type",
    "hasResidual",
    "kvCacheCfg",
    "qkScale",
    "clampType",
    "batchRunStatusEnable",
    "mlaVHeadSize",
]
VALUES = st.one_of(
    st.integers(-3, 6),
    st.floats(-2, 2),
    st.booleans(),
    st.lists(st.integers(-2, 5), max_size=4),
    st.sampled_from(["sum", "max", "hccl", "lcoc", ""]),
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "quantType": st.integers(-1, 3),
            "epsilon": st.floats(0, 1),
            "hasBias": st.booleans(),
            "dynamicQuantType": st.integers(0, 3),
            "rstd": st.booleans(),
            "asymmetric": st.booleans(),
            "varAttr": st.floats(-2, 2),
        },
    ),
)
SECTIONS = ["normParam", "preNormParam", "postNormParam", "quantParam", "mulsParam"]
DTYPES = [torch.float16, torch.float32, torch.bfloat16, torch.int8, torch.int32, torch.int64]


@st.composite
def junk_inputs(draw):
    count = draw(st.integers(0, 7))
    tensors = []
    for _ in range(count):
        shape = draw(st.lists(st.integers(0, 3), max_size=draw(st.sampled_from([0, 1, 2, 4]))))
        dtype = draw(st.sampled_from(DTYPES))
        values = torch.randint(-3, 4, shape) if shape else torch.tensor(draw(st.integers(-3, 3)))
        tensors.append(values.to(dtype))
    return tensors


def test_the_atb_set_is_registered():
    assert len(ATB_OPS) == 38
    assert set(ATB_OPS) <= set(op_types())


@pytest.mark.parametrize("op", ATB_OPS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(inputs=junk_inputs(), params=st.dictionaries(st.sampled_from(KEYS + SECTIONS), VALUES, max_size=6))
def test_bad_inputs_raise_only_opcheck_error(op, inputs, params):
    try:
        outputs = reference(op, inputs, params)
    except OpcheckError as exc:
        assert op in str(exc)
        # the registry's catch-all wrapper means a check is missing in the reference
        assert "the reference failed" not in str(exc), str(exc)
    else:
        assert all(isinstance(t, torch.Tensor) for t in outputs)


def test_every_atb_operator_has_a_section_in_the_docs():
    text = DOC.read_text(encoding="utf-8")
    atb_part = text[text.index("## ATB operators") :]
    headings = set(re.findall(r"^### (\w+Operation)", atb_part, flags=re.MULTILINE))
    assert set(ATB_OPS) <= headings, sorted(set(ATB_OPS) - headings)
    assert "Deviations from msit" in atb_part


def test_references_find_the_original_dtypes_in_their_params():
    seen = []

    @register_op("TestDtypesOperation")
    def probe(inputs, params):
        seen.append((list(params[INPUT_DTYPES]), [t.dtype for t in inputs]))
        return [inputs[0]]

    (out,) = reference(
        "TestDtypesOperation", [torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.int8)]
    )
    assert seen == [([torch.bfloat16, torch.int8], [torch.float64, torch.int8])]
    assert out.dtype == torch.bfloat16


def test_self_attention_mask_factor_depends_on_the_input_dtype():
    q = torch.zeros(2, 2, 4)
    k = torch.zeros(2, 1, 4)
    v = torch.stack([torch.zeros(1, 4), torch.ones(1, 4)])  # second key's value is 1
    mask = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    params = {"headNum": 2, "kvHeadNum": 1, "calcType": 3, "maskType": 1}
    seq = torch.tensor([2])
    binary = reference(
        "SelfAttentionOperation",
        [q.bfloat16(), k.bfloat16(), v.bfloat16(), mask.bfloat16(), seq],
        params,
        dtype=torch.float64,
    )[0]
    additive = reference(
        "SelfAttentionOperation",
        [q.half(), k.half(), v.half(), mask.half(), seq],
        params,
        dtype=torch.float64,
    )[0]
    assert binary[0].abs().max() == 0  # bf16: the 1 masks key 1 out
    assert 0.5 < float(additive[0, 0, 0]) < 1  # fp16: the 1 is a +1 bias on key 1
