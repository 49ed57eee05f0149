"""Names shared by the library and the plugin's option parsing, importable without torch."""

STANDARD_METRICS = (
    "cosine_similarity",
    "max_relative_error",
    "mean_relative_error",
    "max_absolute_error",
    "mean_absolute_error",
    "kl_divergence",
    "relative_euclidean_distance",
)
"""The seven metrics of the standard report, in report order."""

EXTRA_METRICS = (
    "sqnr_db",
    "rel_err_ratio_0_001",
    "rel_err_ratio_0_005",
    "max_ulp_error",
    "tolerance_pass_rate",
)

METRICS = STANDARD_METRICS + EXTRA_METRICS

THRESHOLD_KEYWORDS: dict[str, tuple[str, str]] = {
    "min_cos": ("cosine_similarity", ">="),
    "max_rel_err": ("max_relative_error", "<="),
    "max_mean_rel_err": ("mean_relative_error", "<="),
    "max_abs_err": ("max_absolute_error", "<="),
    "max_mean_abs_err": ("mean_absolute_error", "<="),
    "max_kl": ("kl_divergence", "<="),
    "max_red": ("relative_euclidean_distance", "<="),
    "min_sqnr_db": ("sqnr_db", ">="),
    "min_ratio_0_001": ("rel_err_ratio_0_001", ">="),
    "min_ratio_0_005": ("rel_err_ratio_0_005", ">="),
    "max_ulp": ("max_ulp_error", "<="),
    "min_pass_rate": ("tolerance_pass_rate", ">="),
}
"""Keyword form of a threshold (for calls, markers and the command line) -> (metric, operator)."""

KEYWORD_OF = {metric: keyword for keyword, (metric, _) in THRESHOLD_KEYWORDS.items()}

PROFILE_NAMES = ("default", "strict", "msit", "msprobe")
"""The named precision standards (``pytest_llmprec.standards.PROFILES``)."""
