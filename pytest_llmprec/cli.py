"""The ``llmprec`` console script."""

from __future__ import annotations

import argparse
import sys

from .capture import exec as capture_exec
from .capture import logits as capture_logits
from .logits import badcase
from .logits import cli as logits_cli
from .opcheck import cli as opcheck_cli
from .overflow import errcheck
from .pipeline import command as compare_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmprec",
        description="LLM inference precision tools: capture dumps and check for overflow without code "
        "changes, compare dumps, check operators. Comparisons also run as tests: "
        "pytest --llm-golden=GOLDEN --llm-my=MY.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    capture_exec.add_parser(subparsers)
    capture_logits.add_parser(subparsers)
    logits_cli.add_parser(subparsers)
    badcase.add_parsers(subparsers)
    compare_command.add_parser(subparsers)
    opcheck_cli.add_parser(subparsers)
    errcheck.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
