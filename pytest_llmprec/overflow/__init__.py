"""Overflow checks: scanning tensors (``scan``, ``assert_no_overflow``), live models (``OverflowGuard``,
the ``overflow`` marker and ``overflow_guard`` fixture), dumps (``pytest --llm-overflow=DUMP``) and
programs (``llmprec errcheck --exec``). Names are imported on first use; ``finding``, ``report`` and
``compare_columns`` need no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_NEAR": "finding",
    "OverflowFinding": "finding",
    "dtype_limits": "finding",
    "PendingScan": "scanning",
    "resolve_all": "scanning",
    "scan": "scanning",
    "OverflowFailure": "assertion",
    "assert_no_overflow": "assertion",
    "CallContext": "monitor",
    "Detection": "monitor",
    "ModuleCall": "monitor",
    "ModuleNames": "monitor",
    "OverflowMonitor": "monitor",
    "OverflowGuard": "guard",
    "ScanNode": "dump_scan",
    "scan_nodes": "dump_scan",
    "scan_record": "dump_scan",
    "PAIR_COLUMNS": "compare_columns",
    "first_overflow_line": "compare_columns",
    "overflow_columns": "compare_columns",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .assertion import OverflowFailure, assert_no_overflow
    from .compare_columns import PAIR_COLUMNS, first_overflow_line, overflow_columns
    from .dump_scan import ScanNode, scan_nodes, scan_record
    from .finding import DEFAULT_NEAR, OverflowFinding, dtype_limits
    from .guard import OverflowGuard
    from .monitor import CallContext, Detection, ModuleCall, ModuleNames, OverflowMonitor
    from .scanning import PendingScan, resolve_all, scan

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
