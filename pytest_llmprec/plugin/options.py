"""Command-line options, ini keys and markers, and the settings read from them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from ..errors import LlmprecError
from ..standards.names import PROFILE_NAMES, THRESHOLD_KEYWORDS
from ..standards.thresholds import Rule, Threshold, parse_rules

DEFAULT_REPORT_DIR = "llmprec-report"
LEVELS = ("layer", "module", "api", "logits")
"""--llm-level values (``matching.base.LEVELS``, spelled here: loading the plugin imports no matcher)."""
DEFAULT_BASELINE_TOLERANCE = 0.1

MARKERS = (
    "llm_compare: a golden/my tensor pair collected from --llm-golden/--llm-my dumps.",
    "llm_precision(standard=None, **thresholds): precision standard and thresholds (min_cos, max_red, "
    "max_abs_err, ...) for llm_compare calls and dump pairs in the marked tests.",
)


def option_name(keyword: str) -> str:
    return "--llm-" + keyword.replace("_", "-")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmprec", "LLM precision comparison (pytest-llmprec)")

    def add(name: str, ini: str | None, help: str, ini_type: str = "string", **kwargs) -> None:
        group.addoption(name, dest=name[2:].replace("-", "_"), help=help, **kwargs)
        if ini:
            parser.addini(ini, f"{help} (ini form of {name})", type=ini_type)

    add(
        "--llm-golden",
        "llm_golden",
        "golden dump: a dump folder, an inner folder or a single file.",
        metavar="PATH",
    )
    add("--llm-my", "llm_my", "dump under test, in the same forms as --llm-golden.", metavar="PATH")
    add(
        "--llm-report-dir",
        "llm_report_dir",
        f"folder for the reports (default {DEFAULT_REPORT_DIR}/).",
        metavar="DIR",
    )
    add(
        "--llm-standard",
        "llm_standard",
        f"precision standard profile: {', '.join(PROFILE_NAMES)} (default: default).",
        metavar="NAME",
    )
    for keyword, (metric, op) in THRESHOLD_KEYWORDS.items():
        group.addoption(
            option_name(keyword),
            dest=f"llm_{keyword}",
            type=float,
            default=None,
            metavar="FLOAT",
            help=f"threshold {metric} {op} FLOAT for every pair (overrides markers and ini rules).",
        )
    add("--llm-tokens", "llm_tokens", "compare only these tokens, e.g. 0,3-5.", metavar="LIST")
    add(
        "--llm-select",
        None,
        "compare only nodes whose name matches GLOB (repeatable).",
        metavar="GLOB",
        action="append",
        default=[],
    )
    parser.addini("llm_select", "node-name globs to compare (ini form of --llm-select)", type="linelist")
    add(
        "--llm-mapping-file",
        "llm_mapping_file",
        'JSON object mapping golden node names to my node names ("a.*": "b.*" maps prefixes).',
        metavar="PATH",
    )
    add(
        "--llm-baseline",
        "llm_baseline",
        "baseline metrics CSV of an earlier run to compare with.",
        metavar="PATH",
    )
    add(
        "--llm-baseline-tolerance",
        "llm_baseline_tolerance",
        f"allowed relative growth of an error against the baseline (default {DEFAULT_BASELINE_TOLERANCE}).",
        metavar="FLOAT",
        type=float,
    )
    add(
        "--llm-update-baseline", None, "write the baseline from this run.", action="store_true", default=False
    )
    add(
        "--llm-fail-on-unmatched",
        "llm_fail_on_unmatched",
        "fail the run when a tensor of either dump has no partner.",
        ini_type="bool",
        action="store_true",
        default=False,
    )
    parser.addini(
        "llm_rules",
        "per-node thresholds, one 'GLOB metric>=value ...' rule per line",
        type="linelist",
    )
    _add_cross_runtime_options(add)


def _add_cross_runtime_options(add) -> None:
    """Options of cross-runtime matching (torch vs ATB, GE vs FX, statistics, weights)."""
    add(
        "--llm-level",
        "llm_level",
        f"tree matching level for torch vs ATB dumps: {', '.join(LEVELS)} "
        "(default: the most detailed level that pairs tensors).",
        metavar="LEVEL",
    )
    add(
        "--llm-op-mapping-file",
        "llm_op_mapping_file",
        "msit op mapping JSON (or a folder holding op_mapping_file.json): "
        '{"AtbType[_outtensorN]": ["TorchType[_output_N]", ...]}.',
        metavar="PATH",
    )
    add(
        "--llm-stats",
        "llm_stats",
        "compare the dumped statistics (statistics.csv, ATB stats files) instead of tensors.",
        ini_type="bool",
        action="store_true",
        default=False,
    )
    add(
        "--llm-weights",
        "llm_weights",
        "compare weights (safetensors folders, weight files, a torch dump's weights/), de-quantised.",
        ini_type="bool",
        action="store_true",
        default=False,
    )
    add(
        "--llm-explain-mapping",
        "llm_explain_mapping",
        "print and write (llmprec_mapping_*.csv) which nodes paired by which rule, and why others did not.",
        ini_type="bool",
        action="store_true",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


@dataclass(frozen=True)
class Settings:
    """The plugin's settings: command line first, then ini, then defaults (reading them needs no torch)."""

    golden: Path | None
    my: Path | None
    report_dir: Path
    ini_standard: str | None
    cli_standard: str | None
    cli_thresholds: tuple[Threshold, ...]
    tokens: str | None
    select: tuple[str, ...]
    mapping_file: Path | None
    baseline: Path | None
    baseline_tolerance: float
    update_baseline: bool
    fail_on_unmatched: bool
    rules: tuple[Rule, ...]
    level: str | None = None
    op_mapping: Any = None
    """The parsed ``matching.op_mapping.OpMapping`` of --llm-op-mapping-file, or None."""
    stats: bool = False
    weights: bool = False
    explain_mapping: bool = False

    @property
    def compares_dumps(self) -> bool:
        return self.golden is not None and self.my is not None

    @property
    def match_mode(self) -> str:
        """What the dumps' pairs compare: ``tensors``, ``stats`` (--llm-stats) or ``weights``."""
        return "stats" if self.stats else "weights" if self.weights else "tensors"


def read_settings(config: pytest.Config) -> Settings:
    """Settings from ``config``; raises ``pytest.UsageError`` naming a bad option or ini value."""
    here = Path(config.invocation_params.dir)
    ini_dir = config.inipath.parent if config.inipath else config.rootpath

    def path(name: str) -> Path | None:
        option = config.getoption(name)
        if option:
            return here / option
        ini = config.getini(name)
        return ini_dir / ini if ini else None

    chosen = config.getoption("llm_standard") or config.getini("llm_standard")
    if chosen and chosen not in PROFILE_NAMES:
        raise pytest.UsageError(
            f"--llm-standard={chosen}: unknown profile; choose one of {', '.join(PROFILE_NAMES)}"
        )
    thresholds = tuple(
        Threshold(metric, op, config.getoption(f"llm_{keyword}"), f"command line {option_name(keyword)}")
        for keyword, (metric, op) in THRESHOLD_KEYWORDS.items()
        if config.getoption(f"llm_{keyword}") is not None
    )
    try:
        rules = tuple(parse_rules(config.getini("llm_rules")))
    except ValueError as exc:
        raise pytest.UsageError(f"ini llm_rules: {exc}") from None
    tolerance = config.getoption("llm_baseline_tolerance")
    if tolerance is None:
        text = config.getini("llm_baseline_tolerance")
        try:
            tolerance = float(text) if text else DEFAULT_BASELINE_TOLERANCE
        except ValueError:
            raise pytest.UsageError(f"ini llm_baseline_tolerance: {text!r} is not a number") from None
    settings = Settings(
        golden=path("llm_golden"),
        my=path("llm_my"),
        report_dir=path("llm_report_dir") or here / DEFAULT_REPORT_DIR,
        ini_standard=config.getini("llm_standard") or None,
        cli_standard=config.getoption("llm_standard"),
        cli_thresholds=thresholds,
        tokens=config.getoption("llm_tokens") or config.getini("llm_tokens") or None,
        select=tuple(config.getoption("llm_select") or config.getini("llm_select")),
        mapping_file=path("llm_mapping_file"),
        baseline=path("llm_baseline"),
        baseline_tolerance=tolerance,
        update_baseline=config.getoption("llm_update_baseline"),
        fail_on_unmatched=config.getoption("llm_fail_on_unmatched") or config.getini("llm_fail_on_unmatched"),
        rules=rules,
    )
    if settings.update_baseline and settings.baseline is None:
        raise pytest.UsageError("--llm-update-baseline needs --llm-baseline=PATH (the file to write)")
    return replace(settings, **_cross_runtime_settings(config, path))


def _flag(config: pytest.Config, name: str) -> bool:
    return bool(config.getoption(name) or config.getini(name))


def _cross_runtime_settings(config: pytest.Config, path) -> dict:
    level = config.getoption("llm_level") or config.getini("llm_level") or None
    if level is not None and level not in LEVELS:
        raise pytest.UsageError(f"--llm-level={level}: unknown level; choose one of {', '.join(LEVELS)}")
    mapping_path = path("llm_op_mapping_file")
    try:
        op_mapping = None
        if mapping_path:
            from ..matching.op_mapping import OpMapping

            op_mapping = OpMapping.load(mapping_path)
    except LlmprecError as exc:
        raise pytest.UsageError(f"--llm-op-mapping-file: {exc}") from None
    stats, weights = _flag(config, "llm_stats"), _flag(config, "llm_weights")
    if stats and weights:
        raise pytest.UsageError("--llm-stats and --llm-weights compare different things: give one of them")
    return {
        "level": level,
        "op_mapping": op_mapping,
        "stats": stats,
        "weights": weights,
        "explain_mapping": _flag(config, "llm_explain_mapping"),
    }
