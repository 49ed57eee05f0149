"""Logits and token assertions: ``assert_logits_close`` (msit's logitscmp rule and the near-tie-aware
top-1 check, position by position) and ``assert_same_tokens`` (generated ids, or the argmax of
logits, with the golden's margin deciding whether a changed token is noise)."""

from __future__ import annotations

from typing import Any

from ..logits.metrics import LogitsMetrics, LogitsThresholds, compare_logits
from ..logits.run import describe_metrics
from ..logits.tokens import FAILING, token_verdict


class LogitsError(AssertionError):
    """A logits or token check failed; ``position`` is the first failing position, ``metrics`` its
    metrics (None when ids were compared)."""

    def __init__(self, message: str, position: int | None, metrics: LogitsMetrics | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.metrics = metrics


def _rows(logits: Any) -> Any:
    import torch

    tensor = logits if isinstance(logits, torch.Tensor) else torch.as_tensor(logits)
    return tensor.reshape(1, -1) if tensor.dim() < 2 else tensor.reshape(-1, tensor.shape[-1])


def assert_logits_close(
    golden: Any,
    my: Any,
    *,
    cosine_similarity: float = 0.999,
    kl_divergence: float = 0.0001,
    l1_norm: float = 0.01,
    dtype: str | None = None,
    tie_ulps: float = 4.0,
) -> list[LogitsMetrics]:
    """Each position (row of ``[..., vocab]``) passes msit's logitscmp rule and keeps its top-1
    token, unless the change is a near tie (the golden's margin between the two tokens is at most
    ``tie_ulps`` ULPs of ``dtype``, default the coarser dtype of the inputs). Returns the metrics
    of every position; raises ``LogitsError`` at the first failing one."""
    __tracebackhide__ = True
    thresholds = LogitsThresholds(cosine_similarity, kl_divergence, l1_norm, dtype, tie_ulps=tie_ulps)
    g_rows, m_rows = _rows(golden), _rows(my)
    if g_rows.shape != m_rows.shape:
        raise LogitsError(
            f"logits shapes differ: golden {list(g_rows.shape)}, my {list(m_rows.shape)} "
            "(as [positions, vocab])",
            None,
        )
    found = []
    for position in range(g_rows.shape[0]):
        metrics = compare_logits(g_rows[position], m_rows[position], thresholds)
        verdict = token_verdict(metrics)
        if verdict in FAILING:
            reason = metrics.fail_reason if not metrics.compared else verdict
            lines = [f"logits differ at position {position} of {g_rows.shape[0]}: {reason}"]
            if metrics.compared:
                lines += describe_metrics(metrics)
            raise LogitsError("\n".join(lines), position, metrics)
        found.append(metrics)
    return found


def assert_same_tokens(
    golden: Any,
    my: Any,
    *,
    golden_logits: Any = None,
    dtype: str | None = None,
    tie_ulps: float = 4.0,
) -> None:
    """The two token sequences are equal. Each side is ids (``[n]``/``[1, n]`` integers) or logits
    (``[n, vocab]``, compared by argmax). A differing position passes when it is a near tie of the
    golden logits (given as ``golden``, or as ``golden_logits`` with golden ids); the positions
    after a near-tie flip are not compared (the runs continued from different tokens). Raises
    ``LogitsError`` with the first differing position, both tokens and the golden's margin."""
    __tracebackhide__ = True
    g_ids, logits = _ids(golden)
    m_ids, _ = _ids(my)
    logits = logits if golden_logits is None else _rows(golden_logits)
    for position in range(min(len(g_ids), len(m_ids))):
        g_token, m_token = g_ids[position], m_ids[position]
        if g_token == m_token:
            continue
        text = f"tokens differ at position {position}: golden {g_token}, my {m_token}"
        if logits is None or position >= logits.shape[0]:
            raise LogitsError(f"{text} (no golden logits to judge the margin)", position)
        row = logits[position].float()
        margin = float(row[g_token] - row[m_token])
        from ..logits.metrics import DTYPE_NAMES, ULP_UNITS
        from ..logits.tokens import tie_tolerance

        unit = dtype or DTYPE_NAMES.get(str(logits.dtype), "fp32")
        if unit not in ULP_UNITS:
            raise ValueError(f"dtype must be one of {', '.join(ULP_UNITS)}, got {unit!r}")
        tolerance = tie_tolerance(max(abs(float(row[g_token])), abs(float(row[m_token]))), unit, tie_ulps)
        if margin <= tolerance:
            return  # a near tie: the sequences continue from different tokens
        raise LogitsError(
            f"{text}; golden margin between them {margin:.6g} > tolerance {tolerance:.3g} ({unit}): "
            "a real divergence",
            position,
        )
    if len(g_ids) != len(m_ids):
        position = min(len(g_ids), len(m_ids))
        raise LogitsError(
            f"token sequences differ in length: golden {len(g_ids)}, my {len(m_ids)} (first missing position "
            f"{position})",
            position,
        )


def _ids(side: Any) -> tuple[list[int], Any]:
    """The token ids of ``side`` and its logits rows (None for ids)."""
    import torch

    tensor = side if isinstance(side, torch.Tensor) else torch.as_tensor(side)
    if tensor.is_floating_point():
        rows = _rows(tensor)
        return rows.argmax(-1).tolist(), rows
    return tensor.reshape(-1).tolist(), None
