"""pytest-llmprec: LLM inference precision debugging as a pytest suite.

The public names below are imported on first use, so that ``import
pytest_llmprec`` (and pytest loading the plugin) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "CompareResult": "results",
    "compare_tensors": "metrics",
    "row_kl_divergence": "metrics",
    "Standard": "standards",
    "Threshold": "thresholds",
    "Tolerance": "thresholds",
    "Verdict": "standards",
    "judge": "standards",
    "get_standard": "standards",
    "PrecisionError": "assertions",
    "assert_close_cos": "assertions",
    "assert_max_abs_error": "assertions",
    "assert_max_rel_error": "assertions",
    "assert_mean_rel_error": "assertions",
    "assert_red": "assertions",
    "assert_kl_div": "assertions",
    "assert_sqnr": "assertions",
    "assert_ulp": "assertions",
    "assert_precision": "assertions",
    "DumpConfig": "capture.config",
    "register_hook": "capture.hooks",
    "dump_data": "capture.manual",
    "seed_all": "capture.seed",
    "Dump": "dumps",
    "TensorRecord": "dumps",
    "load_dump": "dumps",
    "DumpFormatError": "errors",
    "LlmprecError": "errors",
    "TensorInfo": "formats",
    "list_members": "formats",
    "load_tensor": "formats",
    "probe_tensor": "formats",
    "read_atb_bin": "formats",
    "read_atb_stats": "formats",
    "save_atb_bin": "formats",
    "read_ge_dump": "formats",
    "write_ge_dump": "formats",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .assertions import (
        PrecisionError,
        assert_close_cos,
        assert_kl_div,
        assert_max_abs_error,
        assert_max_rel_error,
        assert_mean_rel_error,
        assert_precision,
        assert_red,
        assert_sqnr,
        assert_ulp,
    )
    from .capture.config import DumpConfig
    from .capture.hooks import register_hook
    from .capture.manual import dump_data
    from .capture.seed import seed_all
    from .dumps import Dump, TensorRecord, load_dump
    from .errors import DumpFormatError, LlmprecError
    from .formats import (
        TensorInfo,
        list_members,
        load_tensor,
        probe_tensor,
        read_atb_bin,
        read_atb_stats,
        read_ge_dump,
        save_atb_bin,
        write_ge_dump,
    )
    from .metrics import compare_tensors, row_kl_divergence
    from .results import CompareResult
    from .standards import Standard, Verdict, get_standard, judge
    from .thresholds import Threshold, Tolerance


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
