"""The dump comparison without pytest: settings → dumps → pairs → evaluated pairs → reports.

``Comparison(CompareSettings(golden=..., my=...))`` is used by the pytest plugin and by
``llmprec compare``; both write the same report files. Names are imported on first use, so that
reading settings (the plugin does at every start) imports no matcher or report module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "Comparison": "comparison",
    "SetupError": "comparison",
    "EvaluatedPair": "evaluate",
    "evaluate_pair": "evaluate",
    "read_pair": "evaluate",
    "CompareSettings": "settings",
    "DEFAULT_BASELINE_TOLERANCE": "settings",
    "DEFAULT_REPORT_DIR": "settings",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .comparison import Comparison, SetupError
    from .evaluate import EvaluatedPair, evaluate_pair, read_pair
    from .settings import DEFAULT_BASELINE_TOLERANCE, DEFAULT_REPORT_DIR, CompareSettings

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
