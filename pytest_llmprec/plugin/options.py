"""Command-line options, ini keys and markers, and the settings read from them."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..pipeline.path_map import on_worker, parse_path_map
from ..pipeline.settings import (
    DEFAULT_BASELINE_TOLERANCE,
    DEFAULT_REPORT_DIR,
    MATCH_LEVELS,
    VERDICTS,
    CompareSettings,
)
from ..pipeline.settings import ITEM_GRANULARITIES as GRANULARITIES
from ..report.png_plots import MATPLOTLIB_MISSING
from ..standards.names import PROFILE_NAMES, THRESHOLD_KEYWORDS
from ..standards.thresholds import Threshold, parse_rules

OPTION_NAMES = {
    "golden": "--llm-golden",
    "my": "--llm-my",
    "tokens": "--llm-tokens",
    "mapping_file": "--llm-mapping-file",
    "baseline": "--llm-baseline",
    "update_baseline": "--llm-update-baseline",
    "report_dir": "--llm-report-dir",
    "op_mapping_file": "--llm-op-mapping-file",
    "plots_dir": "--llm-plots",
}
"""Settings as the messages of a pytest run name them."""

MARKERS = (
    "llm_compare: a golden/my tensor pair collected from --llm-golden/--llm-my dumps.",
    "llm_precision(standard=None, **thresholds): precision standard and thresholds (min_cos, max_red, "
    "max_abs_err, ...) for llm_compare calls and dump pairs in the marked tests.",
    "opcheck(op_type=None, params=None, standard=None, **thresholds): an operator precheck; the opcheck "
    "fixture checks outputs against the reference of op_type (also set on --llm-opcheck items).",
    "overflow(include=None, exclude=None, saturation=True, near=None, inputs=False, stop=False, dump=None): "
    "fail the test with the first module whose outputs overflow (NaN, Inf, saturated values) while it runs.",
    "llm_overflow: a node of a dump scanned for overflow (--llm-overflow).",
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
    add(
        "--llm-verdict",
        "llm_verdict",
        "what dump items judge: local (default), the error each node introduces; accumulated, the "
        "error as dumped (docs/verdict.md).",
        metavar="local|accumulated",
    )
    add(
        "--llm-max-introduced",
        "llm_max_introduced",
        "relative Euclidean distance one node may introduce, for every dtype (default: per dtype).",
        metavar="FLOAT",
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
    # operator prechecks (plugin/opcheck.py)
    add(
        "--llm-opcheck",
        "llm_opcheck",
        "check every operator of this dump (ATB, torch hook or FX) against its reference.",
        metavar="DUMP",
    )
    add(
        "--llm-opcheck-ids",
        None,
        "only operators with these ids and their descendants (msit -ids), e.g. 3,5_1.",
        metavar="IDS",
    )
    add(
        "--llm-opcheck-name",
        None,
        "only operators whose type contains one of these (msit -opname), e.g. linear,rmsnorm.",
        metavar="NAMES",
    )
    add(
        "--llm-opcheck-skip-bad-input",
        None,
        "skip, instead of fail, operators whose dumped files or parameters cannot be read.",
        action="store_true",
        default=False,
    )

    _add_scale_options(add)
    _add_cross_runtime_options(add)
    _add_logits_options(group)
    _add_overflow_options(parser)


LOGITS_OPTIONS = {
    "cs": ("logits_cosine", 0.999, "logits dumps: msit's cosine threshold (passed needs cosine > FLOAT)"),
    "kl": ("logits_kl", 0.0001, "logits dumps: msit's KL threshold (passed needs kl < FLOAT)"),
    "l1": ("logits_l1", 0.01, "logits dumps: msit's signed l1 ratio threshold (passed needs l1 < FLOAT)"),
}
"""``--llm-logits-{cs,kl,l1}``: the setting, its default and help."""


def _add_logits_options(group) -> None:
    """Thresholds and dtype of logits dumps (msit logitscmp's -cs -kl -l1 -d)."""
    for suffix, (_, default, text) in LOGITS_OPTIONS.items():
        group.addoption(
            f"--llm-logits-{suffix}",
            dest=f"llm_logits_{suffix}",
            type=float,
            default=default,
            metavar="FLOAT",
            help=f"{text} (default {default}).",
        )
    group.addoption(
        "--llm-logits-dtype",
        dest="llm_logits_dtype",
        choices=("fp16", "bf16", "fp32"),
        default=None,
        help="logits dumps: the dtype the logits were computed in (ULP unit, near-tie tolerance); "
        "default: the coarser dtype of the two files.",
    )


def _add_scale_options(add) -> None:
    """Options of large runs: item granularity, dumps at other paths on xdist workers."""
    add(
        "--llm-item",
        "llm_item",
        f"what one test item compares: {', '.join(GRANULARITIES)} (default tensor: one item per tensor "
        "pair; module: per node; layer: per decoder layer; token: per token). The report has one row "
        "per pair either way.",
        metavar="GRANULARITY",
    )
    add(
        "--llm-no-fork",
        None,
        "evaluate every pair in pytest's own process. By default, on Linux, a forked child evaluates "
        "half of each large token's pairs, and under the accumulated verdict a serial run's pairs "
        "while pytest runs the items.",
        action="store_true",
        default=False,
    )
    add(
        "--llm-path-map",
        None,
        "on xdist workers, read paths starting with OLD at NEW instead (dumps mounted elsewhere on "
        "remote workers; repeatable; reports keep the OLD paths).",
        metavar="OLD=NEW",
        action="append",
        default=[],
    )


def _add_cross_runtime_options(add) -> None:
    """Options of cross-runtime matching (torch vs ATB, GE vs FX, statistics, weights)."""
    add(
        "--llm-level",
        "llm_level",
        f"tree matching level for torch vs ATB dumps: {', '.join(MATCH_LEVELS)} "
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


# --- overflow scans of dumps (--llm-overflow) ---------------------------------------------------------


def _add_overflow_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmprec")
    group.addoption(
        "--llm-overflow",
        dest="llm_overflow",
        metavar="DUMP",
        help="scan the outputs of every node of this dump for overflow (NaN, Inf, saturated values); "
        "one test per node.",
    )
    group.addoption(
        "--llm-overflow-near",
        dest="llm_overflow_near",
        type=float,
        metavar="FRACTION",
        help="also fail nodes with values reaching FRACTION (0 < FRACTION <= 1) of the dtype's largest "
        "finite value.",
    )
    group.addoption(
        "--llm-overflow-saturation",
        dest="llm_overflow_saturation",
        choices=("on", "off"),
        default="on",
        metavar="on|off",
        help="whether values at ± the largest finite value (integers: at their limits) count as "
        "overflow (default: on).",
    )


@dataclass(frozen=True)
class OverflowSettings:
    """The options of a dump overflow scan."""

    dump: Path | None
    near: float | None
    saturation: bool
    report_dir: Path


def read_overflow_settings(config: pytest.Config) -> OverflowSettings:
    """The ``--llm-overflow*`` settings; ``pytest.UsageError`` for a bad value."""
    option = config.getoption("llm_overflow")
    near = config.getoption("llm_overflow_near")
    if near is not None and not 0 < near <= 1:
        raise pytest.UsageError(f"--llm-overflow-near={near:g}: expected a fraction in (0, 1]")
    return OverflowSettings(
        dump=Path(config.invocation_params.dir) / option if option else None,
        near=near,
        saturation=config.getoption("llm_overflow_saturation") == "on",
        report_dir=report_dir(config),
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def command_line_thresholds(config: pytest.Config) -> tuple[Threshold, ...]:
    """The thresholds given as ``--llm-min-cos=...`` and the like, each naming its option as source."""
    thresholds = []
    for keyword, (metric, op) in THRESHOLD_KEYWORDS.items():
        value = config.getoption(f"llm_{keyword}")
        if value is not None:
            try:
                thresholds.append(Threshold(metric, op, value, f"command line {option_name(keyword)}"))
            except ValueError as exc:
                message = str(exc).replace(f"{keyword}=", f"{option_name(keyword)}=", 1)
                raise pytest.UsageError(message) from None
    return tuple(thresholds)


def config_path(config: pytest.Config, name: str) -> Path | None:
    """The path of option ``name`` (relative to the invocation folder) or of its ini key (relative
    to the ini file's folder); None when neither is set."""
    option = config.getoption(name)
    if option:
        return Path(config.invocation_params.dir) / option
    ini = config.getini(name)
    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    return ini_dir / ini if ini else None


def report_dir(config: pytest.Config) -> Path:
    """The folder of the report files (``--llm-report-dir``)."""
    return config_path(config, "llm_report_dir") or Path(config.invocation_params.dir) / DEFAULT_REPORT_DIR


def read_settings(config: pytest.Config) -> CompareSettings:
    """Settings from ``config``; raises ``pytest.UsageError`` naming a bad option or ini value."""

    def path(name: str) -> Path | None:
        return config_path(config, name)

    chosen = config.getoption("llm_standard") or config.getini("llm_standard")
    if chosen and chosen not in PROFILE_NAMES:
        raise pytest.UsageError(
            f"--llm-standard={chosen}: unknown profile; choose one of {', '.join(PROFILE_NAMES)}"
        )
    thresholds = command_line_thresholds(config)
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
    level = config.getoption("llm_level") or config.getini("llm_level") or None
    if level is not None and level not in MATCH_LEVELS:
        raise pytest.UsageError(
            f"--llm-level={level}: unknown level; choose one of {', '.join(MATCH_LEVELS)}"
        )
    stats, weights = _flag(config, "llm_stats"), _flag(config, "llm_weights")
    if stats and weights:
        raise pytest.UsageError("--llm-stats and --llm-weights compare different things: give one of them")
    verdict = config.getoption("llm_verdict") or config.getini("llm_verdict") or "local"
    if verdict not in VERDICTS:
        raise pytest.UsageError(f"--llm-verdict={verdict}: choose one of {', '.join(VERDICTS)}")
    max_introduced = _positive(config, "llm_max_introduced")
    item = config.getoption("llm_item") or config.getini("llm_item") or "tensor"
    if item not in GRANULARITIES:
        choices = ", ".join(GRANULARITIES)
        raise pytest.UsageError(f"--llm-item={item}: unknown item granularity; choose one of {choices}")
    try:
        path_map = parse_path_map(config.getoption("llm_path_map"))
    except ValueError as exc:
        raise pytest.UsageError(f"--llm-path-map: {exc}") from None
    html_option = config.getoption("llm_html")
    settings = CompareSettings(
        golden=path("llm_golden"),
        my=path("llm_my"),
        report_dir=report_dir(config),
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
        html=config.getini("llm_html") if html_option is None else html_option,
        fork=not config.getoption("llm_no_fork"),
        plots_dir=path("llm_plots"),
        level=level,
        op_mapping_file=path("llm_op_mapping_file"),
        stats=stats,
        weights=weights,
        explain_mapping=_flag(config, "llm_explain_mapping"),
        verdict=verdict,
        max_introduced=max_introduced,
        logits_dtype=config.getoption("llm_logits_dtype"),
        item=item,
        path_map=path_map,
        option_names=OPTION_NAMES,
        **{name: config.getoption(f"llm_logits_{suffix}") for suffix, (name, _, _) in LOGITS_OPTIONS.items()},
    )
    if hasattr(config, "workerinput"):
        settings = on_worker(settings)
    if settings.plots_dir is not None and importlib.util.find_spec("matplotlib") is None:
        raise pytest.UsageError(f"--llm-plots={settings.plots_dir}: {MATPLOTLIB_MISSING}")
    if settings.update_baseline and settings.baseline is None:
        raise pytest.UsageError("--llm-update-baseline needs --llm-baseline=PATH (the file to write)")
    problems = settings.output_problems() if settings.compares_dumps else []
    if problems:
        raise pytest.UsageError(problems[0])
    return settings


def _positive(config: pytest.Config, name: str) -> float | None:
    """The number of option or ini key ``name`` (None when unset); a usage error unless above 0."""
    text = config.getoption(name) or config.getini(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise pytest.UsageError(f"--{name.replace('_', '-')}={text}: needs a number above 0")
    return value


def _flag(config: pytest.Config, name: str) -> bool:
    return bool(config.getoption(name) or config.getini(name))
