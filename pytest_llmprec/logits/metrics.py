"""Metrics of one token's logits, golden vs my: msit ``logitscmp``'s (msit-spec §3.6) and ours.

msit's: ``cosine_similarity`` (float64), ``kl_divergence`` (softmax on the last dim, rows summed,
clipped at 0), the signed ``l1_norm`` ratio ``Σ|m| / Σ|g| − 1``, ``ulp_max_diff = |max g − max m|``,
``ulp = 2^floor(log2 |max m|) × unit(dtype)`` and the pass rule (all three thresholds with strict
inequalities, else the ULP fallback). Ours: the top-1 token of each side, the top-k overlap, the
golden's top-1 margin, the golden's margin between the two top-1 tokens and the near-tie tolerance
(``tokens``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

ULP_UNITS = {"bf16": 2.0**-7, "fp16": 2.0**-10, "fp32": 2.0**-23}
"""msit's ULP unit per ``--dtype``: the spacing of 1.0 in that type."""

DTYPE_NAMES = {"torch.bfloat16": "bf16", "torch.float16": "fp16", "torch.float32": "fp32"}

MAX_ZERO = "max value is 0, cannot compute ulp"
SHAPE_MISMATCH = "data shape doesn't match."
GOLDEN_NONFINITE = "golden_data includes NAN or inf."
MY_NONFINITE = "my_data includes NAN or inf."


@dataclass(frozen=True)
class LogitsThresholds:
    """msit's thresholds (``-cs -kl -l1``), the dtype (``-d``: ULP unit and near-tie tolerance;
    None takes the coarser dtype of the two files, fp32 for other types), top-k and the tolerance
    in ULPs under which a top-1 change is a near tie."""

    cosine_similarity: float = 0.999
    kl_divergence: float = 0.0001
    l1_norm: float = 0.01
    dtype: str | None = None
    top_k: int = 5
    tie_ulps: float = 4.0

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in ULP_UNITS:
            raise ValueError(f"dtype must be one of {', '.join(ULP_UNITS)}, got {self.dtype!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")


@dataclass(frozen=True)
class LogitsMetrics:
    """The metrics of one golden/my logits pair. Metric fields are None when the pair could not be
    compared (``fail_reason`` says why); ``passed`` is msit's ``True``/``False``/``NA``."""

    cosine_similarity: float | None = None
    kl_divergence: float | None = None
    l1_norm: float | None = None
    ulp_max_diff: float | None = None
    ulp: float | None = None
    passed: str = "NA"
    fail_reason: str = ""
    top1_golden: int | None = None
    top1_my: int | None = None
    topk_overlap: float | None = None
    golden_margin: float | None = None
    flip_margin: float | None = None
    tie_tolerance: float | None = None
    dtype: str = ""
    vocab: int | None = None

    @property
    def compared(self) -> bool:
        return self.cosine_similarity is not None

    @property
    def top1_match(self) -> bool | None:
        if self.top1_golden is None or self.top1_my is None:
            return None
        return self.top1_golden == self.top1_my


def ulp_of(value: float, dtype: str) -> float | None:
    """``2^floor(log2 |value|) × unit(dtype)``; None for 0 (and for a non-finite value)."""
    if value == 0 or not math.isfinite(value):
        return None
    return 2.0 ** math.floor(math.log2(abs(value))) * ULP_UNITS[dtype]


def msit_passed(
    cosine: float, kl: float, l1: float, ulp_max_diff: float | None, ulp: float | None, t: LogitsThresholds
) -> str:
    """msit's verdict: ``True`` when ``cos > cs and kl < kl and l1 < l1`` (strict), else ``True`` when
    ``ulp_max_diff <= ulp``, else ``False``."""
    if cosine > t.cosine_similarity and kl < t.kl_divergence and l1 < t.l1_norm:
        return "True"
    if ulp_max_diff is not None and ulp is not None and ulp_max_diff <= ulp:
        return "True"
    return "False"


def l1_ratio(golden_abs_sum: float, my_abs_sum: float) -> float:
    """msit's signed ``l1_norm``: 0 when both sums are 0, 1 when only golden's is, else ``m/g − 1``."""
    if golden_abs_sum == 0:
        return 0.0 if my_abs_sum == 0 else 1.0
    return my_abs_sum / golden_abs_sum - 1.0


def tensor_dtype_name(tensor: Any) -> str:
    return DTYPE_NAMES.get(str(tensor.dtype), "fp32")


def working_dtype(golden: Any, my: Any, thresholds: LogitsThresholds) -> str:
    """The dtype whose ULP the pair is judged in: the thresholds' or the coarser of the two files'."""
    if thresholds.dtype is not None:
        return thresholds.dtype
    names = {tensor_dtype_name(golden), tensor_dtype_name(my)}
    return max(names, key=lambda name: ULP_UNITS[name])


def as_logits(tensor: Any) -> Any:
    """msit's ``squeeze(0)``: ``[1, vocab]`` → ``[vocab]``; a torch tensor (numpy arrays converted)."""
    import torch

    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(tensor)
    return tensor.squeeze(0) if tensor.dim() > 1 else tensor


def _last_rows(g: Any, m: Any) -> tuple[Any, Any]:
    """A prefill's ``[seq, vocab]`` against one position's ``[vocab]`` (a torch last-logits dump against
    a ``LogitsDumper`` file): the prefill's last row, the position that chose the token."""
    if g.dim() == 2 and m.dim() == 1 and g.shape[-1] == m.shape[-1]:
        return g[-1], m
    if m.dim() == 2 and g.dim() == 1 and g.shape[-1] == m.shape[-1]:
        return g, m[-1]
    return g, m


def shape_reasons(golden: Any, my: Any) -> list[str]:
    """Why two tensors cannot be compared at all: msit's shape reason (with the shapes), empty or
    complex tensors. msit also checks finiteness with them: that comes with the sums."""
    if golden.shape != my.shape:
        return [f"{SHAPE_MISMATCH} (golden {list(golden.shape)}, my {list(my.shape)})"]
    if golden.numel() == 0:
        return ["empty tensor"]
    if golden.is_complex() or my.is_complex():
        return ["complex logits are not supported"]
    return []


def _finite(tensor: Any) -> bool:
    import torch

    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def compare_logits(golden: Any, my: Any, thresholds: LogitsThresholds | None = None) -> LogitsMetrics:
    """The metrics of one token's logits (``[vocab]``, ``[1, vocab]`` or ``[rows, vocab]``; the top-1
    fields describe the last row, the next token's)."""
    import torch

    t = thresholds or LogitsThresholds()
    g, m = _last_rows(as_logits(golden), as_logits(my))
    dtype = working_dtype(g, m, t)
    reasons = shape_reasons(g, m)
    if reasons:
        return LogitsMetrics(fail_reason=" ".join(reasons), dtype=dtype)
    g32 = g.float() if g.dtype != torch.float64 else g
    m32 = m.float() if m.dtype != torch.float64 else m
    sums = _kernel_sums(g, m)
    if sums is None:
        reasons = [
            reason for tensor, reason in ((g, GOLDEN_NONFINITE), (m, MY_NONFINITE)) if not _finite(tensor)
        ]
        sums = (0.0,) * 6 if reasons else _torch_sums(g32, m32)
    else:
        reasons = [
            reason for bad, reason in zip(sums[6:], (GOLDEN_NONFINITE, MY_NONFINITE), strict=True) if bad
        ]
    if reasons:
        return LogitsMetrics(fail_reason=" ".join(reasons), dtype=dtype)
    gg, mm, gm, kl, g_max, m_max = sums[:6]
    cosine = _cosine(gg, mm, gm)
    l1 = l1_ratio(abs_sum(g32), abs_sum(m32))
    ulp = ulp_of(m_max, dtype)
    ulp_max_diff = None if ulp is None else abs(g_max - m_max)
    passed = msit_passed(cosine, kl, l1, ulp_max_diff, ulp, t)
    top = _top(g32.reshape(-1, g32.shape[-1])[-1], m32.reshape(-1, m32.shape[-1])[-1], t, dtype)
    return LogitsMetrics(
        cosine, kl, l1, ulp_max_diff, ulp, passed, MAX_ZERO if ulp is None else "", *top, dtype, g.shape[-1]
    )


def _cosine(gg: float, mm: float, gm: float) -> float:
    if gg == 0 and mm == 0:
        return 1.0
    return round(gm / (max(math.sqrt(gg), 1e-8) * max(math.sqrt(mm), 1e-8)), 10)


Sums = tuple[float, ...]
"""Σg², Σm², Σgm, Σ-over-rows KL, max g, max m; from the kernel also whether g, m hold NaN/Inf."""


def _kernel_sums(g: Any, m: Any) -> Sums | None:
    """The sums by the C kernel (one float64 pass per row), or None when it cannot read the tensors."""
    from ..compare import native
    from ..compare.accumulators import UlpGrid
    from ..compare.results import default_tolerance

    if not native.available() or g.device.type != "cpu" or m.device.type != "cpu":
        return None
    if not (native.readable(g.dtype) and native.readable(m.dtype)):
        return None
    g_rows = g.reshape(-1, g.shape[-1]).contiguous()
    m_rows = m.reshape(-1, m.shape[-1]).contiguous()
    ulp, tolerance = UlpGrid.of(m.dtype), default_tolerance(g.dtype, m.dtype)
    gg = mm = gm = kl = 0.0
    g_max = m_max = -math.inf
    g_bad = m_bad = False
    for row in range(g_rows.shape[0]):
        golden = native.Buffer(_bytes(g_rows[row]), g.dtype)
        my = native.Buffer(_bytes(m_rows[row]), m.dtype)
        acc = native.accumulate_buffers(golden, my, 0, ulp, tolerance)
        g_bad = g_bad or bool(acc["g_nan"] or acc["g_inf"])
        m_bad = m_bad or bool(acc["m_nan"] or acc["m_inf"])
        if g_bad or m_bad:
            continue
        gg, mm, gm = gg + acc["sum_gg"], mm + acc["sum_mm"], gm + acc["sum_gm"]
        lse_g = acc["kl_g_max"] + math.log(acc["kl_g_sum"])
        lse_m = acc["kl_m_max"] + math.log(acc["kl_m_sum"])
        kl += acc["kl_g_dot"] / acc["kl_g_sum"] - lse_g + lse_m
        g_max, m_max = max(g_max, acc["g_max"]), max(m_max, acc["m_max"])
    return gg, mm, gm, max(kl, 0.0), g_max, m_max, g_bad, m_bad


def _bytes(row: Any) -> memoryview:
    import torch

    return memoryview(row.view(torch.uint8).numpy())


def _torch_sums(g: Any, m: Any) -> Sums:
    """The sums by torch in float64 (logits on an accelerator, dtypes the kernel does not read)."""
    import torch

    g64, m64 = g.reshape(-1).double(), m.reshape(-1).double()
    log_p = torch.log_softmax(g.double(), dim=-1)
    log_q = torch.log_softmax(m.double(), dim=-1)
    kl = max(float(torch.sum(log_p.exp() * (log_p - log_q))), 0.0)
    dots = float(torch.dot(g64, g64)), float(torch.dot(m64, m64)), float(torch.dot(g64, m64))
    return (*dots, kl, float(g.max()), float(m.max()))


def _top(g: Any, m: Any, t: LogitsThresholds, dtype: str) -> tuple[int, int, float, float, float, float]:
    """top1_golden, top1_my, topk_overlap, golden_margin, flip_margin, tie_tolerance of one row."""

    from .tokens import tie_tolerance

    k = min(t.top_k, g.numel())
    wide = min(max(k, 2), g.numel())
    (g_values, g_indices), (_, m_indices) = top_k(g, wide), top_k(m, wide)
    top1_g, top1_m = g_indices[0], m_indices[0]
    overlap = len(set(g_indices[:k]) & set(m_indices[:k])) / k
    golden_margin = g_values[0] - g_values[1] if g.numel() > 1 else math.inf
    g_at_g, g_at_m = float(g[top1_g]), float(g[top1_m])
    tolerance = tie_tolerance(max(abs(g_at_g), abs(g_at_m)), dtype, t.tie_ulps)
    return top1_g, top1_m, overlap, golden_margin, g_at_g - g_at_m, tolerance


TOP_K_ROWS = 64
"""``top_k`` views a row as ``[64, n/64]``: the ``k`` largest elements lie in the ``k`` columns with
the largest column maxima."""


def top_k(row: Any, k: int, *, use_numpy: bool | None = None) -> tuple[list[float], list[int]]:
    """The ``k`` largest values of a 1-D tensor and their indices, largest first, equal values by
    increasing index among them (the first is ``argmax`` unless more than k values tie for the
    maximum). One pass of column maxima over a ``[64, n/64]`` view, then the ``k`` best columns
    and the tail; numpy for CPU tensors (single-threaded: torch's thread pool costs more than the
    work on a busy machine; ``use_numpy`` None), torch otherwise."""
    import numpy as np
    import torch

    on_cpu = row.device.type == "cpu" if use_numpy is None else use_numpy
    values = row.numpy() if on_cpu else row
    width = row.numel() // TOP_K_ROWS
    full = width * TOP_K_ROWS
    if width < 4 * k:
        candidates = np.arange(row.numel()) if on_cpu else torch.arange(row.numel(), device=row.device)
    elif on_cpu:
        column_max = values[:full].reshape(TOP_K_ROWS, width).max(axis=0)
        columns = np.argpartition(column_max, -k)[-k:]
        grid = columns[None, :] + width * np.arange(TOP_K_ROWS)[:, None]
        candidates = np.concatenate([grid.reshape(-1), np.arange(full, row.numel())])
    else:
        column_max = values[:full].view(TOP_K_ROWS, width).amax(dim=0)
        columns = torch.topk(column_max, k).indices
        grid = columns[None, :] + width * torch.arange(TOP_K_ROWS, device=row.device)[:, None]
        candidates = torch.cat([grid.reshape(-1), torch.arange(full, row.numel(), device=row.device)])
    picked = values[candidates]
    if on_cpu:
        best = np.argpartition(picked, -k)[-k:] if picked.size > k else np.arange(picked.size)
        chosen = zip(picked[best].astype(np.float64).tolist(), candidates[best].tolist(), strict=True)
    else:
        found = torch.topk(picked, k)
        chosen = zip(found.values.double().tolist(), candidates[found.indices].tolist(), strict=True)
    order = sorted(chosen, key=lambda item: (-item[0], item[1]))
    return [value for value, _ in order], [index for _, index in order]


def abs_sum(tensor: Any) -> float:
    """``Σ|x|`` in float64 (numpy for CPU tensors, see ``top_k``)."""
    import numpy as np
    import torch

    if tensor.device.type == "cpu":
        return float(np.abs(tensor.reshape(-1).numpy()).sum(dtype=np.float64))
    return float(tensor.abs().sum(dtype=torch.float64))
