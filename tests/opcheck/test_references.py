"""torch-module and aten references against independent float64 formulas (hypothesis over shapes,
dtypes and parameters), and the registry's errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmprec.opcheck import NotCheckable, OpcheckError, op_types, reference
from pytest_llmprec.testing.strategies import activations

DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16])
SHAPES = st.tuples(st.integers(1, 3), st.integers(1, 5), st.sampled_from([8, 16, 40]))


def as_np(tensor):
    return tensor.double().numpy()


def close(ours, expected, rtol=1e-12, atol=1e-12):
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), expected, rtol=rtol, atol=atol)


@given(x=activations(SHAPES, DTYPES), out=st.integers(1, 9), bias=st.booleans(), data=st.data())
def test_linear(x, out, bias, data):
    w = data.draw(activations((out, x.shape[-1]), x.dtype))
    b = data.draw(activations((out,), x.dtype)) if bias else None
    weights = {"weight": w} | ({"bias": b} if bias else {})
    (ours,) = reference("Linear", [x], {}, weights=weights, dtype=torch.float64)
    expected = as_np(x) @ as_np(w).T + (as_np(b) if bias else 0.0)
    close(ours, expected, rtol=1e-10, atol=1e-9 * (1 + np.abs(expected).max()))
    assert reference("Linear", [x], weights=weights)[0].dtype == x.dtype


@given(dtype=DTYPES, rows=st.integers(1, 20), ids=st.lists(st.integers(0, 19), min_size=1, max_size=8))
def test_embedding_rows(dtype, rows, ids):
    table = torch.randn(20, 4).to(dtype)
    (ours,) = reference("Embedding", [torch.tensor(ids)], {}, weights={"weight": table}, dtype=torch.float64)
    close(ours, as_np(table)[ids])
    assert reference("Embedding", [torch.tensor(ids)], weights={"weight": table})[0].dtype == dtype


def rms(x, eps):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps)


@given(x=activations(SHAPES, DTYPES), eps=st.sampled_from([1e-6, 1e-5, 0.1]), data=st.data())
def test_rms_norms(x, eps, data):
    w = data.draw(activations((x.shape[-1],), x.dtype))
    xs, ws = as_np(x), as_np(w)
    for name in ("LlamaRMSNorm", "Qwen2RMSNorm", "MistralRMSNorm", "T5LayerNorm"):
        (ours,) = reference(name, [x], {"variance_epsilon": eps}, weights={"weight": w}, dtype=torch.float64)
        close(ours, ws * rms(xs, eps), rtol=1e-9, atol=1e-9)
    (gemma,) = reference("GemmaRMSNorm", [x], {"eps": eps}, weights={"weight": w}, dtype=torch.float64)
    close(gemma, (1 + ws) * rms(xs, eps), rtol=1e-9, atol=1e-9)
    (plain,) = reference(
        "RMSNorm", [x], {"normalized_shape": [x.shape[-1]], "eps": None}, dtype=torch.float64
    )
    close(plain, rms(xs, torch.finfo(x.dtype).eps), rtol=1e-9, atol=1e-9)


@given(x=activations(SHAPES, DTYPES), eps=st.sampled_from([1e-5, 1e-3]), affine=st.booleans(), data=st.data())
def test_layer_norm(x, eps, affine, data):
    xs = as_np(x)
    centred = xs - xs.mean(-1, keepdims=True)
    expected = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps)
    weights = {}
    if affine:
        w, b = (data.draw(activations((x.shape[-1],), x.dtype)) for _ in range(2))
        weights = {"weight": w, "bias": b}
        expected = expected * as_np(w) + as_np(b)
    params = {"normalized_shape": [x.shape[-1]], "eps": eps}
    (ours,) = reference("LayerNorm", [x], params, weights=weights, dtype=torch.float64)
    close(ours, expected, rtol=1e-8, atol=1e-8)


ERF = np.vectorize(math.erf)
FORMULAS = {
    "SiLU": lambda x: x / (1 + np.exp(-x)),
    "SiLUActivation": lambda x: x / (1 + np.exp(-x)),
    "GELUActivation": lambda x: x * 0.5 * (1 + ERF(x / math.sqrt(2))),
    "GELUTanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "NewGELUActivation": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "FastGELUActivation": lambda x: 0.5 * x * (1 + np.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x))),
    "QuickGELUActivation": lambda x: x / (1 + np.exp(-1.702 * x)),
    "ReLU": lambda x: np.maximum(x, 0),
    "ReLU6": lambda x: np.clip(x, 0, 6),
    "ReLUSquaredActivation": lambda x: np.maximum(x, 0) ** 2,
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "Tanh": np.tanh,
    "Mish": lambda x: x * np.tanh(np.logaddexp(0, x)),
    "Hardswish": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "Dropout": lambda x: x,
    "Identity": lambda x: x,
}


@given(x=activations(SHAPES, DTYPES), name=st.sampled_from(sorted(FORMULAS)))
def test_activations(x, name):
    (ours,) = reference(name, [x], {}, dtype=torch.float64)
    close(ours, FORMULAS[name](as_np(x)), rtol=1e-10, atol=1e-12)
    assert reference(name, [x])[0].dtype == x.dtype


@given(x=activations(SHAPES, DTYPES), approximate=st.sampled_from(["none", "tanh"]), slope=st.floats(0, 1))
def test_parametrised_activations(x, approximate, slope):
    xs = as_np(x)
    (gelu,) = reference("GELU", [x], {"approximate": approximate}, dtype=torch.float64)
    expected = FORMULAS["GELUTanh" if approximate == "tanh" else "GELUActivation"](xs)
    close(gelu, expected, rtol=1e-10, atol=1e-12)
    (leaky,) = reference("LeakyReLU", [x], {"negative_slope": slope}, dtype=torch.float64)
    close(leaky, np.where(xs >= 0, xs, slope * xs))
    (clipped,) = reference("ClippedGELUActivation", [x], {"min": -0.1, "max": 2.0}, dtype=torch.float64)
    close(clipped, np.clip(FORMULAS["GELUActivation"](xs), -0.1, 2.0), rtol=1e-10, atol=1e-12)


@given(
    dtype=DTYPES,
    dim=st.sampled_from([8, 32]),
    positions=st.lists(st.integers(0, 9000), min_size=1, max_size=6),
    scaling=st.sampled_from([1.0, 0.7]),
)
def test_rotary_embedding(dtype, dim, positions, scaling):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    x = torch.zeros(1, len(positions), 4, dtype=dtype)
    pos = torch.tensor([positions])
    params = {"attention_scaling": scaling, "rope_type": "default"}
    cos, sin = reference(
        "LlamaRotaryEmbedding", [x, pos], params, weights={"inv_freq": inv_freq}, dtype=torch.float64
    )
    angle = (np.array(positions, dtype=np.float32)[:, None] * inv_freq.numpy()).astype(np.float64)
    emb = np.concatenate([angle, angle], -1)[None]
    close(cos, np.cos(emb) * scaling, rtol=1e-12, atol=1e-12)
    close(sin, np.sin(emb) * scaling, rtol=1e-12, atol=1e-12)
    assert [
        t.dtype for t in reference("Qwen2RotaryEmbedding", [x, pos], params, weights={"inv_freq": inv_freq})
    ] == [dtype, dtype]


def test_registry_errors_name_what_is_wrong():
    x = torch.randn(2, 4)
    with pytest.raises(OpcheckError, match=r"LlamaRMSNorm: missing required parameter\(s\) variance_epsilon"):
        reference("LlamaRMSNorm", [x], {}, weights={"weight": torch.ones(4)})
    with pytest.raises(OpcheckError, match=r"Linear: missing weight\(s\) weight"):
        reference("Linear", [x])
    with pytest.raises(OpcheckError, match="LlamaRotaryEmbedding: expected 2 inputs, got 1"):
        reference("LlamaRotaryEmbedding", [x], weights={"inv_freq": torch.ones(2)})
    with pytest.raises(OpcheckError, match="did you mean LlamaRMSNorm"):
        reference("LlamaRMSNorn", [x])
    with pytest.raises(OpcheckError, match="normalized_shape"):
        reference("LayerNorm", [x], {"normalized_shape": [3], "eps": 1e-5})
    with pytest.raises(NotCheckable, match="rope_type 'dynamic'"):
        reference(
            "LlamaRotaryEmbedding",
            [x, torch.zeros(1, 2)],
            {"rope_type": "dynamic"},
            weights={"inv_freq": torch.ones(2)},
        )
    with pytest.raises(OpcheckError, match="reference failed on inputs"):
        reference("Linear", [x], weights={"weight": torch.ones(3, 5)})


def test_known_types_include_the_module_classes_and_any_aten_op():
    names = op_types()
    for name in (
        "Linear",
        "Embedding",
        "LayerNorm",
        "RMSNorm",
        "LlamaRMSNorm",
        "GemmaRMSNorm",
        "GELU",
        "Dropout",
    ):
        assert name in names
    from pytest_llmprec.opcheck import is_known

    assert is_known("aten.mm.default") and is_known("aten.softmax.int")
    assert not is_known("aten.no_such_op.default") and not is_known("NoSuchModule")


def test_transformers_activation_class_names_are_covered():
    activations_module = pytest.importorskip("transformers.activations")
    for key, entry in activations_module.ACT2CLS.items():
        cls = entry[0] if isinstance(entry, tuple) else entry
        if key in (
            "gelu_10",
            "gelu_python",
            "gelu_python_tanh",
            "laplace",
            "linear",
            "prelu",
            "xielu",
            "elu",
        ):
            continue  # parameters not recorded as scalars, or no reference (prelu, xielu: learned)
        assert cls.__name__ in op_types(), key
