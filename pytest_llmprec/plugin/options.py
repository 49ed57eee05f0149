"""Command-line options, ini keys and markers, and the settings read from them."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..report.png_plots import MATPLOTLIB_MISSING
from ..standards.names import PROFILE_NAMES, THRESHOLD_KEYWORDS
from ..standards.thresholds import Rule, Threshold, parse_rules

DEFAULT_REPORT_DIR = "llmprec-report"
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
    # --- visual reports (report.html, report.png_plots) ---
    group.addoption(
        "--llm-html",
        dest="llm_html",
        action="store_true",
        default=None,
        help="write the HTML report llmprec_report_{ts}.html beside the CSV report (the default).",
    )
    group.addoption(
        "--no-llm-html", dest="llm_html", action="store_false", help="do not write the HTML report."
    )
    parser.addini(
        "llm_html",
        "write the HTML report (ini form of --llm-html / --no-llm-html)",
        type="bool",
        default=True,
    )
    add(
        "--llm-plots",
        "llm_plots",
        "also write the report's plots as PNG files into DIR (needs matplotlib: pytest-llmprec[plots]).",
        metavar="DIR",
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
    html: bool = True
    plots_dir: Path | None = None

    @property
    def compares_dumps(self) -> bool:
        return self.golden is not None and self.my is not None


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
        html=config.getini("llm_html")
        if config.getoption("llm_html") is None
        else config.getoption("llm_html"),
        plots_dir=path("llm_plots"),
    )
    if settings.plots_dir is not None and importlib.util.find_spec("matplotlib") is None:
        raise pytest.UsageError(f"--llm-plots={settings.plots_dir}: {MATPLOTLIB_MISSING}")
    if settings.update_baseline and settings.baseline is None:
        raise pytest.UsageError("--llm-update-baseline needs --llm-baseline=PATH (the file to write)")
    return settings
