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

from ..compare.native import LogitsRow

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


def compare_logits(golden: Any, my: Any, thresholds: LogitsThresholds | None = None) -> LogitsMetrics:
    """The metrics of one token's logits (``[vocab]``, ``[1, vocab]`` or ``[rows, vocab]``; the top-1
    fields describe the last row, the next token's)."""
    t = thresholds or LogitsThresholds()
    g, m = _last_rows(as_logits(golden), as_logits(my))
    dtype = working_dtype(g, m, t)
    reasons = shape_reasons(g, m)
    if reasons:
        return LogitsMetrics(fail_reason=" ".join(reasons), dtype=dtype)
    wide = min(max(t.top_k, 2), g.shape[-1])
    sums = _kernel_sums(g, m, wide) or _torch_sums(g, m, wide)
    bad = ((sums.g_bad, GOLDEN_NONFINITE), (sums.m_bad, MY_NONFINITE))
    reasons = [reason for flag, reason in bad if flag]
    if reasons:
        return LogitsMetrics(fail_reason=" ".join(reasons), dtype=dtype)
    cosine = _cosine(sums.gg, sums.mm, sums.gm)
    l1 = l1_ratio(sums.g_abs, sums.m_abs)
    ulp = ulp_of(sums.m_max, dtype)
    ulp_max_diff = None if ulp is None else abs(sums.g_max - sums.m_max)
    passed = msit_passed(cosine, sums.kl, l1, ulp_max_diff, ulp, t)
    top = _top(g.reshape(-1, g.shape[-1])[-1], sums, t, dtype)
    return LogitsMetrics(
        cosine,
        sums.kl,
        l1,
        ulp_max_diff,
        ulp,
        passed,
        MAX_ZERO if ulp is None else "",
        *top,
        dtype,
        g.shape[-1],
    )


def _cosine(gg: float, mm: float, gm: float) -> float:
    if gg == 0 and mm == 0:
        return 1.0
    return round(gm / (max(math.sqrt(gg), 1e-8) * max(math.sqrt(mm), 1e-8)), 10)


def _kernel_sums(g: Any, m: Any, k: int) -> LogitsRow | None:
    """The statistics of all rows by the C kernel (one float64 pass per row; sums and KL added over
    the rows, maxima over the rows, the top-k of the last row), or None when it cannot read the
    tensors."""
    import torch

    from ..compare import native

    if not native.available() or g.device.type != "cpu" or m.device.type != "cpu":
        return None
    if not (native.readable(g.dtype) and native.readable(m.dtype)):
        return None
    g_rows = g.reshape(-1, g.shape[-1]).contiguous()
    m_rows = m.reshape(-1, m.shape[-1]).contiguous()
    rows = g_rows.shape[0]
    totals = [0.0] * 6
    g_max, m_max, g_bad, m_bad = -math.inf, -math.inf, False, False
    for row in range(rows):
        golden = native.Buffer(g_rows[row].view(torch.uint8).numpy(), g.dtype)
        my = native.Buffer(m_rows[row].view(torch.uint8).numpy(), m.dtype)
        found = native.logits_row(golden, my, k if row == rows - 1 else 0)
        g_bad, m_bad = g_bad or found.g_bad, m_bad or found.m_bad
        if g_bad or m_bad:
            continue
        for index, value in enumerate((found.gg, found.mm, found.gm, found.g_abs, found.m_abs, found.kl)):
            totals[index] += value
        g_max, m_max = max(g_max, found.g_max), max(m_max, found.m_max)
    gg, mm, gm, g_abs, m_abs, kl = totals
    return LogitsRow(
        gg, mm, gm, g_abs, m_abs, g_max, m_max, g_bad, m_bad, max(kl, 0.0), found.g_top, found.m_top
    )


def _torch_sums(g: Any, m: Any, k: int) -> LogitsRow:
    """``_kernel_sums``'s statistics by torch in float64 (logits on an accelerator, dtypes the kernel
    does not read)."""
    import torch

    g_bad, m_bad = not _finite(g), not _finite(m)
    if g_bad or m_bad:
        return LogitsRow(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, g_bad, m_bad, 0.0, [], [])
    g = g.float() if g.dtype != torch.float64 else g
    m = m.float() if m.dtype != torch.float64 else m
    g64, m64 = g.reshape(-1).double(), m.reshape(-1).double()
    log_p = torch.log_softmax(g.double(), dim=-1)
    log_q = torch.log_softmax(m.double(), dim=-1)
    kl = max(float(torch.sum(log_p.exp() * (log_p - log_q))), 0.0)
    dots = float(torch.dot(g64, g64)), float(torch.dot(m64, m64)), float(torch.dot(g64, m64))
    g_last, m_last = g.reshape(-1, g.shape[-1])[-1], m.reshape(-1, m.shape[-1])[-1]
    g_top, m_top = (list(zip(*top_k(row, k), strict=True)) for row in (g_last, m_last))
    extremes = abs_sum(g), abs_sum(m), float(g.max()), float(m.max())
    return LogitsRow(*dots, *extremes, False, False, kl, g_top, m_top)


def _finite(tensor: Any) -> bool:
    import torch

    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def _top(
    g: Any, sums: LogitsRow, t: LogitsThresholds, dtype: str
) -> tuple[int, int, float, float, float, float]:
    """top1_golden, top1_my, topk_overlap, golden_margin, flip_margin, tie_tolerance of the last row
    ``g`` of the golden."""
    from .tokens import tie_tolerance

    k = min(t.top_k, g.numel())
    g_indices = [index for _, index in sums.g_top]
    m_indices = [index for _, index in sums.m_top]
    top1_g, top1_m = g_indices[0], m_indices[0]
    overlap = len(set(g_indices[:k]) & set(m_indices[:k])) / k
    golden_margin = sums.g_top[0][0] - sums.g_top[1][0] if g.numel() > 1 else math.inf
    g_at_g, g_at_m = float(g[top1_g]), float(g[top1_m])
    tolerance = tie_tolerance(max(abs(g_at_g), abs(g_at_m)), dtype, t.tie_ulps)
    return top1_g, top1_m, overlap, golden_margin, g_at_g - g_at_m, tolerance


TOP_K_ROWS = 64
"""``top_k`` views a row as ``[64, n/64]``: the ``k`` largest elements lie in the ``k`` columns with
the largest column maxima."""


def top_k(row: Any, k: int, *, use_numpy: bool | None = None) -> tuple[list[float], list[int]]:
    """The ``k`` largest values of a 1-D float tensor and their indices, largest first, equal values
    by increasing index (as the C kernel gives them). The ``k``-th largest value comes from one
    pass of column maxima over a ``[64, n/64]`` view, the ``k`` best columns and the tail; a second
    pass takes every value at least as large. numpy for CPU tensors (single-threaded: torch's
    thread pool costs more than the work on a busy machine; ``use_numpy`` None), torch otherwise."""
    import numpy as np
    import torch

    on_cpu = row.device.type == "cpu" if use_numpy is None else use_numpy
    values = row.numpy() if on_cpu else row
    floor = _kth_largest(values, k, on_cpu)
    if on_cpu:
        at_least = np.flatnonzero(values >= floor)
        order = at_least[np.argsort(-values[at_least], kind="stable")[:k]]
        return values[order].astype(np.float64).tolist(), order.tolist()
    at_least = torch.nonzero(values >= floor).flatten()
    order = at_least[torch.sort(values[at_least], descending=True, stable=True).indices[:k]]
    return values[order].double().tolist(), order.tolist()


def _kth_largest(values: Any, k: int, on_cpu: bool) -> Any:
    import numpy as np
    import torch

    n = values.shape[0]
    width = n // TOP_K_ROWS
    full = width * TOP_K_ROWS
    if width < 4 * k:
        picked = values
    elif on_cpu:
        columns = np.argpartition(values[:full].reshape(TOP_K_ROWS, width).max(axis=0), -k)[-k:]
        grid = columns[None, :] + width * np.arange(TOP_K_ROWS)[:, None]
        picked = values[np.concatenate([grid.reshape(-1), np.arange(full, n)])]
    else:
        columns = torch.topk(values[:full].view(TOP_K_ROWS, width).amax(dim=0), k).indices
        grid = columns[None, :] + width * torch.arange(TOP_K_ROWS, device=values.device)[:, None]
        picked = values[torch.cat([grid.reshape(-1), torch.arange(full, n, device=values.device)])]
    if on_cpu:
        return np.partition(picked, picked.size - k)[picked.size - k]
    return torch.topk(picked, k).values[-1]


def abs_sum(tensor: Any) -> float:
    """``Σ|x|`` in float64 (numpy for CPU tensors, see ``top_k``)."""
    import numpy as np
    import torch

    if tensor.device.type == "cpu":
        return float(np.abs(tensor.reshape(-1).numpy()).sum(dtype=np.float64))
    return float(tensor.abs().sum(dtype=torch.float64))
