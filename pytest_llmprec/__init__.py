"""pytest-llmprec: LLM inference precision debugging as a pytest suite.

The public names below are imported on first use, so that ``import pytest_llmprec`` (and pytest
loading the plugin) does not import torch. Subpackages hold the rest: ``formats`` (tensor file
readers and writers), ``dumps``, ``matching``, ``compare``, ``standards``, ``pipeline``,
``report``, ``capture``, ``overflow`` and ``testing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "CompareResult": "compare.results",
    "compare_tensors": "compare.metrics",
    "row_kl_divergence": "compare.metrics",
    "Standard": "standards",
    "Threshold": "standards",
    "Tolerance": "standards",
    "Verdict": "standards",
    "get_standard": "standards",
    "PrecisionError": "assertions",
    "assert_close_cos": "assertions",
    "assert_kl_div": "assertions",
    "assert_max_abs_error": "assertions",
    "assert_max_rel_error": "assertions",
    "assert_mean_rel_error": "assertions",
    "assert_precision": "assertions",
    "assert_red": "assertions",
    "assert_sqnr": "assertions",
    "assert_ulp": "assertions",
    "assert_logits_close": "assertions",
    "assert_same_tokens": "assertions",
    "LogitsError": "assertions",
    "DumpConfig": "capture",
    "register_hook": "capture",
    "dump_data": "capture",
    "seed_all": "capture",
    "Dump": "dumps",
    "TensorRecord": "dumps",
    "load_dump": "dumps",
    "DumpFormatError": "errors",
    "LlmprecError": "errors",
    "load_tensor": "formats",
    "probe_tensor": "formats",
    "OverflowFailure": "overflow",
    "OverflowFinding": "overflow",
    "OverflowGuard": "overflow",
    "assert_no_overflow": "overflow",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .assertions import (
        LogitsError,
        PrecisionError,
        assert_close_cos,
        assert_kl_div,
        assert_logits_close,
        assert_max_abs_error,
        assert_max_rel_error,
        assert_mean_rel_error,
        assert_precision,
        assert_red,
        assert_same_tokens,
        assert_sqnr,
        assert_ulp,
    )
    from .capture import DumpConfig, dump_data, register_hook, seed_all
    from .compare.metrics import compare_tensors, row_kl_divergence
    from .compare.results import CompareResult
    from .dumps import Dump, TensorRecord, load_dump
    from .errors import DumpFormatError, LlmprecError
    from .formats import load_tensor, probe_tensor
    from .overflow import OverflowFailure, OverflowFinding, OverflowGuard, assert_no_overflow
    from .standards import Standard, Threshold, Tolerance, Verdict, get_standard


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
