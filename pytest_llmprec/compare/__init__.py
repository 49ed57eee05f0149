"""The metric engine: ``compare_tensors(golden, my) -> CompareResult`` in one pass over the data.

``metrics`` takes torch tensors, arrays and numbers; ``native`` is the C backend over raw
buffers (``compare_raw`` for raw reads of dump files, no torch); ``torch_backend`` computes the
same accumulators with float64 torch operations (CUDA tensors, or without the C kernel);
``accumulators`` and ``results`` turn accumulators into a ``CompareResult``. Names are imported
on first use, so the torch-free parts stay torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "CompareResult": "results",
    "compare_any": "dispatch",
    "compare_raw": "native",
    "TensorLike": "metrics",
    "as_tensor": "metrics",
    "compare_tensors": "metrics",
    "count_exceeding": "metrics",
    "row_kl_divergence": "metrics",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .dispatch import compare_any
    from .metrics import TensorLike, as_tensor, compare_tensors, count_exceeding, row_kl_divergence
    from .native import compare_raw
    from .results import CompareResult

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
