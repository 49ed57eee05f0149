"""Precision assertions for tests (``assert_close_cos(golden, my, 0.999)`` and friends) and the
failure messages they share with the plugin's items. Names are imported on first use, so that
the torch-free message code does not import torch through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    name: "precision"
    for name in (
        "assert_close_cos",
        "assert_kl_div",
        "assert_max_abs_error",
        "assert_max_rel_error",
        "assert_mean_rel_error",
        "assert_precision",
        "assert_red",
        "assert_sqnr",
        "assert_ulp",
    )
}
_EXPORTS.update(LogitsError="logits", assert_logits_close="logits", assert_same_tokens="logits")
_EXPORTS.update(PrecisionError="checks", check_precision="checks", failure_message="checks")

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .checks import PrecisionError, check_precision, failure_message
    from .logits import LogitsError, assert_logits_close, assert_same_tokens
    from .precision import (
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
