"""``llmprec compare``: the dump comparison without pytest, with msit's option names.

Runs the same pipeline as ``pytest --llm-golden=G --llm-my=M`` and writes the same reports; prints
a progress bar (a plain line per tenth on a non-terminal) and the summary. Exit code 0 when every
pair passes, 1 when one fails (as pytest's), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from ..standards.names import PROFILE_NAMES, THRESHOLD_KEYWORDS
from .settings import DEFAULT_BASELINE_TOLERANCE, DEFAULT_REPORT_DIR, MATCH_LEVELS, VERDICTS, CompareSettings

DESCRIPTION = """\
Compare a golden dump with a dump under test, pair by pair, and write the reports.

The same comparison as `pytest --llm-golden=GOLDEN --llm-my=MY` (same pairs, standards, rows and
report files), without pytest. msit's option names are accepted.

examples:
  llmprec compare -gp dumps/fp32/msit_dump_20261122_101500 -mp dumps/npu/msit_dump_20261122_103000
  llmprec compare -gp G -mp M -o reports --tokens 0-1 --select "root.model.layers.3*"
  llmprec compare -gp G -mp M --baseline precision-baseline.csv
  llmprec compare -gp G -mp M --verdict accumulated     judge errors as dumped, not as introduced
"""

LOG_LEVELS = ("debug", "info", "warning", "error", "fatal")


OPTION_NAMES = {
    "golden": "--golden-path",
    "my": "--my-path",
    "tokens": "--tokens",
    "mapping_file": "--mapping-file",
    "baseline": "--baseline",
    "update_baseline": "--update-baseline",
    "report_dir": "--output",
    "op_mapping_file": "--op-mapping-file",
    "plots_dir": "--plots",
}


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help="compare a golden dump with a dump under test and write the reports (no pytest)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-gp", "--golden-path", required=True, metavar="PATH", help="golden dump")
    parser.add_argument("-mp", "--my-path", required=True, metavar="PATH", help="dump under test")
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_REPORT_DIR,
        metavar="DIR",
        help=f"report folder ({DEFAULT_REPORT_DIR})",
    )
    parser.add_argument("--standard", choices=PROFILE_NAMES, help="precision standard profile (default)")
    for keyword, (metric, op) in THRESHOLD_KEYWORDS.items():
        parser.add_argument(
            "--" + keyword.replace("_", "-"),
            dest=keyword,
            type=float,
            metavar="FLOAT",
            help=f"threshold {metric} {op} FLOAT for every pair",
        )
    parser.add_argument("--tokens", metavar="LIST", help="compare only these tokens, e.g. 0,3-5")
    parser.add_argument(
        "--select", action="append", default=[], metavar="GLOB", help="only nodes matching GLOB (repeatable)"
    )
    parser.add_argument("--mapping-file", metavar="PATH", help="JSON mapping golden node names to my names")
    parser.add_argument(
        "-cl",
        "--cmp-level",
        choices=MATCH_LEVELS,
        help="torch vs ATB matching level (default: the most detailed)",
    )
    parser.add_argument(
        "-mf", "--op-mapping-file", metavar="PATH", help="msit's op mapping JSON, or the folder holding it"
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("-st", "--stats", action="store_true", help="compare dumped statistics, not tensors")
    kind.add_argument("-w", "--weight", action="store_true", help="compare weights, de-quantised")
    parser.add_argument(
        "--explain-mapping", action="store_true", help="print and write which nodes paired by which rule"
    )
    parser.add_argument(
        "--verdict",
        choices=VERDICTS,
        default="local",
        help="judge the error each node introduces (local, default) or the error as dumped (accumulated)",
    )
    parser.add_argument(
        "--max-introduced",
        type=positive_float,
        metavar="FLOAT",
        help="relative Euclidean distance one node may introduce, any dtype (default: per dtype)",
    )
    parser.add_argument("--no-html", dest="html", action="store_false", help="do not write the HTML report")
    parser.add_argument(
        "--no-fork",
        dest="fork",
        action="store_false",
        help="evaluate every pair in this process (by default a forked child evaluates half of large tokens)",
    )
    parser.add_argument(
        "--plots", metavar="DIR", help="also write the report's plots as PNG files (matplotlib)"
    )
    parser.add_argument("--baseline", metavar="PATH", help="baseline metrics CSV to gate regressions against")
    parser.add_argument(
        "--baseline-tolerance",
        type=float,
        default=DEFAULT_BASELINE_TOLERANCE,
        metavar="FLOAT",
        help=f"allowed relative growth of an error (default {DEFAULT_BASELINE_TOLERANCE})",
    )
    parser.add_argument("--update-baseline", action="store_true", help="write the baseline from this run")
    parser.add_argument(
        "--fail-on-unmatched", action="store_true", help="exit 1 when a tensor of either dump has no partner"
    )
    parser.add_argument(
        "-l", "--log-level", choices=LOG_LEVELS, default="info", help="info: progress and summary (default); "
        "warning: no progress; error/fatal: nothing but errors and the exit code"
    )  # fmt: skip
    from ..logits.cli import add_threshold_arguments

    add_threshold_arguments(parser, dtype_default=None)
    parser.set_defaults(handler=run)
    return parser


def settings_of(args: argparse.Namespace) -> CompareSettings:
    from ..standards import Threshold

    thresholds = tuple(
        Threshold.from_keyword(keyword, getattr(args, keyword), f"command line --{keyword.replace('_', '-')}")
        for keyword in THRESHOLD_KEYWORDS
        if getattr(args, keyword) is not None
    )
    return CompareSettings(
        golden=Path(args.golden_path).absolute(),
        my=Path(args.my_path).absolute(),
        report_dir=Path(args.output).absolute(),
        cli_standard=args.standard,
        cli_thresholds=thresholds,
        tokens=args.tokens,
        select=tuple(args.select),
        mapping_file=Path(args.mapping_file).absolute() if args.mapping_file else None,
        baseline=Path(args.baseline).absolute() if args.baseline else None,
        baseline_tolerance=args.baseline_tolerance,
        update_baseline=args.update_baseline,
        fail_on_unmatched=args.fail_on_unmatched,
        html=args.html,
        plots_dir=Path(args.plots).absolute() if args.plots else None,
        level=args.cmp_level,
        op_mapping_file=Path(args.op_mapping_file).absolute() if args.op_mapping_file else None,
        stats=args.stats,
        weights=args.weight,
        explain_mapping=args.explain_mapping,
        verdict=args.verdict,
        max_introduced=args.max_introduced,
        logits_cosine=args.logits_cosine,
        logits_kl=args.logits_kl,
        logits_l1=args.logits_l1,
        logits_dtype=args.logits_dtype,
        fork=args.fork,
        option_names=OPTION_NAMES,
    )


class Progress:
    """``[#####.....] 1020/2040 pairs, 3 failed, 2.1 s`` redrawn in place on a terminal (at most ten
    times a second); on anything else one plain line per tenth of the work."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.live = stream.isatty()
        self.start = self.drawn = time.perf_counter()
        self.tenth = 0

    def update(self, done: int, failed: int) -> None:
        now = time.perf_counter()
        text = f"{done}/{self.total} pairs, {failed} failed, {now - self.start:.1f} s"
        if self.live:
            if now - self.drawn >= 0.1 or done == self.total:
                filled = self.WIDTH * done // max(self.total, 1)
                self.stream.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {text}")
                self.drawn = now
                if done == self.total:
                    self.stream.write("\n")
                self.stream.flush()
        elif 10 * done // max(self.total, 1) > self.tenth or done == self.total:
            self.tenth = 10 * done // max(self.total, 1)
            print(text, file=self.stream, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import LlmprecError
    from .comparison import Comparison, SetupError

    verbose = LOG_LEVELS.index(args.log_level) <= LOG_LEVELS.index("info")
    quiet = LOG_LEVELS.index(args.log_level) >= LOG_LEVELS.index("error")
    if args.update_baseline and not args.baseline:
        print(
            "llmprec compare: error: --update-baseline needs --baseline=PATH (the file to write)",
            file=sys.stderr,
        )
        return 2
    settings = settings_of(args)
    problems = settings.output_problems()
    if problems:
        print(f"llmprec compare: error: {problems[0]}", file=sys.stderr)
        return 2
    try:
        comparison = Comparison(settings)
        if verbose:
            comparison.announce = lambda line: print(line, file=sys.stderr, flush=True)
        pairs = comparison.pairs()
    except (SetupError, LlmprecError) as exc:
        print(f"llmprec compare: error: {exc}", file=sys.stderr)
        return 2
    progress = Progress(len(pairs), sys.stderr) if verbose and pairs else None
    failed = 0
    try:
        for done, evaluated in enumerate(comparison.evaluations(pairs), start=1):
            failed += not evaluated.passed
            if progress is not None:
                progress.update(done, failed)
    finally:  # also after Ctrl-C: the pairs compared so far are reported
        paths = comparison.write_reports()
        comparison.close()
    if not quiet:
        for line in [*comparison.summary(paths), *comparison.mapping_lines()]:
            print(line)
    unmatched = bool(comparison.match().unmatched) and args.fail_on_unmatched
    return 1 if failed or unmatched else 0
