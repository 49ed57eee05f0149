"""``llmprec logitscmp``: two folders of per-token logits files, msit's options and report.

``-gp/-mp`` the golden and my logits dumps (a ``logits_{task}_{batch}_{token}.pth`` folder, a
torch last-logits dump), ``-cs -kl -l1`` msit's thresholds, ``-d`` the dtype (ULP unit and
near-tie tolerance; msit's default fp16), ``-o`` the report folder (msit's ``./output``). Writes
``logits_cmp_res_{ts}.csv`` as ``llmprec compare`` and pytest do. Exit 0 when every token passes,
1 when one fails, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Compare the logits of two runs token by token: msit's cosine / KL / l1 / ULP rule for every
token, the top-1 token of each side, and whether a top-1 change is a near tie (noise) or a real
divergence. Each case is classified: numerically equal, diverged at token t, near-tie flip only.

examples:
  llmprec logitscmp -gp gpu/logits -mp npu/logits
  llmprec logitscmp -gp gpu/logits -mp npu/logits -d bf16 -cs 0.99 -o reports
The same comparison runs as tests: pytest --llm-golden=gpu/logits --llm-my=npu/logits
"""


def _cosine(text: str) -> float:
    value = float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [-1, 1], got {text}")
    return value


def _at_least(bound: float):
    def parse(text: str) -> float:
        value = float(text)
        if not value >= bound:
            raise argparse.ArgumentTypeError(f"must be >= {bound:g}, got {text}")
        return value

    return parse


def add_threshold_arguments(parser: argparse.ArgumentParser, *, dtype_default: str | None) -> None:
    """msit logitscmp's ``-cs -kl -l1 -d`` (on ``llmprec compare`` as ``--logits-*``)."""
    short = dtype_default is not None
    names = (
        ("-cs", "--cosine-similarity"),
        ("-kl", "--kl-divergence"),
        ("-l1", "--l1-norm"),
        ("-d", "--dtype"),
    )
    if not short:
        names = (("--logits-cs",), ("--logits-kl",), ("--logits-l1",), ("--logits-dtype",))
    parser.add_argument(
        *names[0], dest="logits_cosine", type=_cosine, default=0.999, metavar="FLOAT",
        help="passed needs cosine > FLOAT (0.999)",
    )  # fmt: skip
    parser.add_argument(
        *names[1], dest="logits_kl", type=_at_least(0.0), default=0.0001, metavar="FLOAT",
        help="passed needs kl < FLOAT (0.0001)",
    )  # fmt: skip
    parser.add_argument(
        *names[2], dest="logits_l1", type=_at_least(-1.0), default=0.01, metavar="FLOAT",
        help="passed needs the signed l1 ratio < FLOAT (0.01)",
    )  # fmt: skip
    parser.add_argument(
        *names[3], dest="logits_dtype", choices=("fp16", "bf16", "fp32"), default=dtype_default,
        help="dtype of the logits' computation: the ULP unit and the near-tie tolerance "
        + (f"({dtype_default})" if short else "(default: the coarser dtype of the files)"),
    )  # fmt: skip


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "logitscmp",
        help="compare two folders of per-token logits (msit logitscmp)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-gp", "--golden-path", required=True, metavar="DIR", help="golden logits")
    parser.add_argument("-mp", "--my-path", required=True, metavar="DIR", help="logits under test")
    add_threshold_arguments(parser, dtype_default="fp16")
    parser.add_argument(
        "-o", "--output-dir", default="./output", metavar="DIR", help="report folder (./output)"
    )
    parser.add_argument(
        "--tokens", default=None, metavar="LIST", help="compare only these tokens, e.g. 0,3-5"
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..pipeline.comparison import Comparison, SetupError
    from ..pipeline.settings import CompareSettings

    settings = CompareSettings(
        golden=Path(args.golden_path).absolute(),
        my=Path(args.my_path).absolute(),
        report_dir=Path(args.output_dir).absolute(),
        tokens=args.tokens,
        html=False,
        logits_cosine=args.logits_cosine,
        logits_kl=args.logits_kl,
        logits_l1=args.logits_l1,
        logits_dtype=args.logits_dtype,
        option_names={"golden": "--golden-path", "my": "--my-path", "tokens": "--tokens"},
    )
    try:
        comparison = Comparison(settings)
        if comparison.logits() is None:
            kinds = f"{comparison.dump('golden').kind} and {comparison.dump('my').kind}"  # type: ignore[union-attr]
            raise SetupError(f"these are not logits dumps ({kinds}); use llmprec compare")
    except SetupError as exc:
        print(f"llmprec logitscmp: error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    try:
        for evaluated in comparison.evaluations():
            failed += not evaluated.passed
    finally:
        paths = comparison.write_reports()
        comparison.close()
    for line in comparison.summary(paths):
        print(line)
    return 1 if failed else 0
