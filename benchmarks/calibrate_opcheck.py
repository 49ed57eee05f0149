"""Measure the error honest low-precision kernels make against float64 references, to choose the
opcheck default standard (docs/opcheck.md, "Standards").

For each operator (Linear, RMSNorm as Hugging Face computes it, LayerNorm, SiLU, GELU exact and
tanh, softmax, rotary cos/sin, embedding) and each dtype (bfloat16, float16, float32), the torch
CPU kernel runs on inputs held in that dtype and is compared with the same maths in float64 on the
same (exactly widened) inputs. Printed per case, in units of the output dtype's eps (2**-mantissa
bits): the largest relative error over elements with |ref| >= rms(ref)/16 (``rel/eps``), the
largest absolute error over rms(ref) (``abs/eps·rms``), the relative Euclidean distance
(``red/eps``), and the share of elements the default tolerance passes. Then the planted defects
the standard must catch (weight scaled by 1.05, SiLU computed as GELU(tanh), the epsilon of a norm
off, a rotary inv_freq rounded to bfloat16) with the same figures.

Run: python benchmarks/calibrate_opcheck.py
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pytest_llmprec.opcheck.standard import opcheck_standard

DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def rms_norm_hf(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Hugging Face LlamaRMSNorm: float32 normalisation, rounded to the input dtype, times the weight."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def rotary_hf(inv_freq: torch.Tensor, positions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    freqs = positions[..., None].float() * inv_freq.float()
    emb = torch.cat((freqs, freqs), dim=-1)
    return torch.cat([emb.cos(), emb.sin()], -1).to(dtype)


def rotary_reference(inv_freq: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    angle = (positions[..., None].float() * inv_freq.float()).double()  # the module's float32 angle
    emb = torch.cat((angle, angle), dim=-1)
    return torch.cat([emb.cos(), emb.sin()], -1)


def cases(dtype: torch.dtype, generator: torch.Generator):
    """(name, kernel output, float64 reference) for one dtype."""

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale).to(dtype)

    for hidden, out in ((1024, 1024), (4096, 4096), (4096, 11008)):
        x, w, b = randn(64, hidden), randn(out, hidden, scale=hidden**-0.5), randn(out, scale=0.1)
        yield f"linear {hidden}->{out}", F.linear(x, w, b), F.linear(x.double(), w.double(), b.double())
    for hidden in (1024, 4096):
        x, w = randn(64, hidden, scale=3.0), 1 + randn(hidden, scale=0.1)
        xd = x.double()
        ref = w.double() * xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6)
        yield f"rmsnorm(hf) {hidden}", rms_norm_hf(x, w, 1e-6), ref
        bias = randn(hidden, scale=0.1)
        ref = F.layer_norm(xd, (hidden,), w.double(), bias.double(), 1e-5)
        yield f"layernorm {hidden}", F.layer_norm(x, (hidden,), w, bias, 1e-5), ref
    x = randn(64, 11008, scale=3.0)
    yield "silu", F.silu(x), F.silu(x.double())
    yield "gelu", F.gelu(x), F.gelu(x.double())
    yield "gelu tanh", F.gelu(x, approximate="tanh"), F.gelu(x.double(), approximate="tanh")
    scores = randn(16, 64, 1024, scale=4.0)
    yield "softmax 1024", torch.softmax(scores, -1), torch.softmax(scores.double(), -1)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 128, 2, dtype=torch.float32) / 128))
    positions = torch.arange(8192).reshape(1, -1)
    yield (
        "rotary 8192 positions",
        rotary_hf(inv_freq, positions, dtype),
        rotary_reference(inv_freq, positions),
    )
    table, ids = randn(32000, 1024), torch.randint(0, 32000, (64,), generator=generator)
    yield "embedding", F.embedding(ids, table), F.embedding(ids, table.double())


def defects(generator: torch.Generator):
    """(name, defective bf16 output, float64 reference of the intended operator)."""
    dtype = torch.bfloat16
    x = (torch.randn(64, 4096, generator=generator) * 3).to(dtype)
    w = (1 + torch.randn(4096, generator=generator) * 0.1).to(dtype)
    xd = x.double()
    ref = w.double() * xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + 1e-6)
    yield "rmsnorm weight x1.05", rms_norm_hf(x, (w.float() * 1.05).to(dtype), 1e-6), ref
    small = (torch.randn(64, 4096, generator=generator) * 1e-3).to(dtype)
    sd = small.double()
    ref_small = w.double() * sd * torch.rsqrt(sd.pow(2).mean(-1, keepdim=True) + 1e-6)
    yield "rmsnorm eps 1e-5 for 1e-6 (|x|~1e-3)", rms_norm_hf(small, w, 1e-5), ref_small
    act = (torch.randn(64, 11008, generator=generator) * 3).to(dtype)
    yield "silu computed as gelu(tanh)", F.gelu(act, approximate="tanh"), F.silu(act.double())
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 128, 2, dtype=torch.float32) / 128))
    positions = torch.arange(4096).reshape(1, -1)
    rounded = rotary_hf(inv_freq.to(dtype), positions, dtype)
    yield "rotary inv_freq rounded to bf16", rounded, rotary_reference(inv_freq, positions)


def figures(actual: torch.Tensor, reference: torch.Tensor) -> str:
    eps = torch.finfo(actual.dtype).eps
    a, r = actual.double(), reference
    err = (a - r).abs()
    rms = float(r.pow(2).mean().sqrt())
    big = r.abs() >= rms / 16
    rel = float((err[big] / r.abs()[big]).max()) / eps if big.any() else 0.0
    absolute = float(err.max()) / (eps * rms) if rms else 0.0
    red = float(err.norm() / r.norm()) / eps if float(r.norm()) else 0.0
    standard = opcheck_standard(actual.dtype, reference)
    tol = standard.tolerance
    ok = err <= tol.atol + tol.rtol * r.abs()
    share = float(ok.double().mean())
    return f"rel/eps {rel:8.3f}  abs/eps·rms {absolute:8.3f}  red/eps {red:7.4f}  pass {share:.6f}"


def main() -> None:
    torch.manual_seed(0)
    for dtype in DTYPES:
        print(f"--- honest kernels, {dtype} (eps {torch.finfo(dtype).eps:.3g})")
        generator = torch.Generator().manual_seed(1)
        for name, actual, reference in cases(dtype, generator):
            print(f"  {name:28s} {figures(actual, reference)}")
    print("--- planted defects, torch.bfloat16")
    for name, actual, reference in defects(torch.Generator().manual_seed(2)):
        print(f"  {name:38s} {figures(actual, reference)}")
    print(f"(math.ulp(1.0) for reference: {math.ulp(1.0):.3g})")


if __name__ == "__main__":
    main()
