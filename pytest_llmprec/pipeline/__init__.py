"""The dump comparison without pytest: settings → dumps → pairs → evaluated pairs → reports.

``Comparison(CompareSettings(golden=..., my=...))`` is used by the pytest plugin and by
``llmprec compare``; both write the same report files.
"""

from .comparison import Comparison, SetupError
from .evaluate import EvaluatedPair, evaluate_pair, read_pair
from .settings import DEFAULT_BASELINE_TOLERANCE, DEFAULT_REPORT_DIR, CompareSettings

__all__ = [
    "DEFAULT_BASELINE_TOLERANCE",
    "DEFAULT_REPORT_DIR",
    "CompareSettings",
    "Comparison",
    "EvaluatedPair",
    "SetupError",
    "evaluate_pair",
    "read_pair",
]
