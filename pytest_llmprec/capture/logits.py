"""Logits dumps of bad cases (msit-spec §1.5, §2.6).

``llmprec logitsdump --exec CMD --bad-case-result CSV --token-range N`` runs an evaluation harness
with the environment contract of msit/modeltest:

* ``BAD_CASE_LOGITS_DUMP="True"``
* ``LOGITS_DUMP_TOKEN_MAX_LENGTH=str(N)``: dump tokens ``0..N-1``
* ``BAD_CASE_LIST=repr(list)``: the case keys of the CSV's ``key`` column

and the harness writes ``logits_{task}_{batch_id}_{token_id}.pth``. ``LogitsDumper`` is that
writer for one's own harness.
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from ..errors import DumpFormatError
from .process import CommandError, run_command, split_command
from .writer import save_tensor_atomic

ENABLE_ENV = "BAD_CASE_LOGITS_DUMP"
TOKENS_ENV = "LOGITS_DUMP_TOKEN_MAX_LENGTH"
CASES_ENV = "BAD_CASE_LIST"
LAUNCHERS = ("torchrun", "modeltest")
HUMANEVAL_X_LANGUAGES = ("CPP", "Go", "Java", "JavaScript", "Python")

_HUMANEVAL = re.compile(r"HumanEval/(\d+)")
_HUMANEVAL_X = re.compile(r"(CPP|Go|Java|JavaScript|Python)/(\d+)")

BadCaseList = list[int] | list[list[int]]


def bad_case_list(csv_path: str | os.PathLike[str]) -> BadCaseList:
    """The ``BAD_CASE_LIST`` of a bad-case CSV (``llmprec``/msit ``bcanalyze`` output, column ``key``).

    Integer keys (BoolQ, CEval, MMLU, GSM8K, needlebench) give ``[k, ...]``; ``HumanEval/<n>`` keys
    give ``[n, ...]``; HumanEval-X ``<Language>/<n>`` keys give five lists, in the order
    CPP, Go, Java, JavaScript, Python. All keys of a file must be of one kind.
    """
    path = os.fspath(csv_path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
            columns = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DumpFormatError(path, f"cannot read the bad-case CSV: {error}") from error
    if "key" not in columns:
        raise DumpFormatError(path, "no 'key' column (expected the bad-case CSV of bcanalyze)")
    keys = [
        (number, row["key"].strip()) for number, row in enumerate(rows, start=2) if (row["key"] or "").strip()
    ]
    if not keys:
        raise DumpFormatError(path, "no bad cases: the 'key' column is empty")
    return _case_list(path, keys)


def _case_list(path: str, keys: list[tuple[int, str]]) -> BadCaseList:
    first = keys[0][1]
    if first.isdigit():
        kind, pattern = "integer", re.compile(r"(\d+)")
    elif _HUMANEVAL.fullmatch(first):
        kind, pattern = "HumanEval/<n>", _HUMANEVAL
    elif _HUMANEVAL_X.fullmatch(first):
        kind, pattern = "<Language>/<n>", _HUMANEVAL_X
    else:
        raise DumpFormatError(
            path, f"line 2: key {first!r} is not an integer, HumanEval/<n> or <Language>/<n>"
        )
    matches = []
    for line, key in keys:
        match = pattern.fullmatch(key)
        if match is None:
            raise DumpFormatError(
                path, f"line {line}: key {key!r} does not have the form of the first key ({kind})"
            )
        matches.append(match)
    if pattern is not _HUMANEVAL_X:
        return [int(match.group(1)) for match in matches]
    per_language: list[list[int]] = [[] for _ in HUMANEVAL_X_LANGUAGES]
    for match in matches:
        per_language[HUMANEVAL_X_LANGUAGES.index(match.group(1))].append(int(match.group(2)))
    return per_language


def logits_dump_env(cases: BadCaseList, token_range: int) -> dict[str, str]:
    """The environment variables that switch on a modeltest-style logits dump."""
    return {ENABLE_ENV: "True", TOKENS_ENV: str(token_range), CASES_ENV: repr(cases)}


class LogitsDumper:
    """Writes ``{output_dir}/logits_{task}_{batch_id}_{token_id}.pth`` for the cases and tokens asked.

    ``case_keys`` None dumps every batch; ``token_range`` N dumps tokens ``0..N-1``.
    """

    def __init__(
        self, output_dir: str | os.PathLike[str], case_keys: Iterable[int] | None = None, token_range: int = 1
    ):
        if isinstance(token_range, bool) or not isinstance(token_range, int) or token_range < 1:
            raise ValueError(f"token_range must be an int >= 1, got {token_range!r}")
        self.output_dir = os.path.abspath(os.fspath(output_dir))
        self.case_keys = None if case_keys is None else frozenset(case_keys)
        self.token_range = token_range

    @classmethod
    def from_env(cls, output_dir: str | os.PathLike[str], language: str | None = None) -> LogitsDumper | None:
        """The dumper ``llmprec logitsdump`` asked for, or None when ``BAD_CASE_LOGITS_DUMP`` is not ``True``.

        With a HumanEval-X case list, ``language`` (CPP, Go, Java, JavaScript, Python) picks its keys.
        """
        if os.environ.get(ENABLE_ENV) != "True":
            return None
        token_range = int(os.environ.get(TOKENS_ENV, "1"))
        cases = ast.literal_eval(os.environ.get(CASES_ENV, "[]"))
        if cases and isinstance(cases[0], list):
            if language not in HUMANEVAL_X_LANGUAGES:
                raise ValueError(
                    f"{CASES_ENV} holds HumanEval-X lists: pass language= one of {HUMANEVAL_X_LANGUAGES}"
                )
            cases = cases[HUMANEVAL_X_LANGUAGES.index(language)]
        return cls(output_dir, cases, token_range)

    def wants(self, batch_id: int, token_id: int) -> bool:
        in_cases = self.case_keys is None or batch_id in self.case_keys
        return in_cases and 0 <= token_id < self.token_range

    def dump(self, task: str, batch_id: int, token_id: int, logits: Any) -> str | None:
        """Save the logits of one token of one case; the path, or None when not asked for."""
        if not task or any(sep in task for sep in "/\\") or task in (".", ".."):
            raise ValueError(f"task must be a plain file-name part, got {task!r}")
        if not self.wants(batch_id, token_id):
            return None
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, f"logits_{task}_{batch_id}_{token_id}.pth")
        save_tensor_atomic(path, logits.detach().to("cpu", copy=True))
        return path

    def attach(self, model: Any, task: str, batch_id: int) -> Any:
        """Dump ``model``'s logits on each forward call (call k = token k); returns the hook handle.

        The logits are the output tensor (or its first element / ``logits`` field); a
        ``[batch, seq, vocab]`` output is cut to the last position, ``[batch, vocab]``.
        """
        calls = iter(range(sys.maxsize))

        def hook(module: Any, args: Any, output: Any) -> None:
            logits = _logits_of(output)
            self.dump(task, batch_id, next(calls), logits[:, -1, :] if logits.dim() == 3 else logits)

        return model.register_forward_hook(hook)


def _logits_of(output: Any) -> Any:
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


DESCRIPTION = """\
Run an evaluation harness (MindIE modeltest, or your own with --any-command) with the bad-case
logits dump switched on. The harness sees:
  BAD_CASE_LOGITS_DUMP=True
  LOGITS_DUMP_TOKEN_MAX_LENGTH=N        dump tokens 0..N-1
  BAD_CASE_LIST=[...]                   case keys from the CSV's 'key' column
and writes logits_{task}_{batch_id}_{token_id}.pth (pytest_llmprec.capture.LogitsDumper does
this for your own harness). Compare two such folders with
pytest --llm-golden=GOLDEN_LOGITS_DIR --llm-my=MY_LOGITS_DIR.

example:
  llmprec logitsdump --exec "modeltest --model_name llama ..." --bad-case-result bad.csv --token-range 8
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "logitsdump",
        help="run an evaluation harness dumping the logits of bad cases",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--exec",
        "-e",
        dest="command",
        required=True,
        metavar="CMD",
        help="the command (torchrun or modeltest ...)",
    )
    parser.add_argument(
        "--bad-case-result", "-bcr", required=True, metavar="CSV", help="bad-case CSV with a 'key' column"
    )
    parser.add_argument(
        "--token-range",
        "-tr",
        type=_positive_int,
        default=1,
        metavar="N",
        help="dump tokens 0..N-1 (default: 1)",
    )
    parser.add_argument(
        "--any-command",
        action="store_true",
        help="allow a command that does not start with torchrun or modeltest (e.g. your own harness)",
    )
    parser.set_defaults(handler=run_logitsdump)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {text!r}")
    return value


def run_logitsdump(args: argparse.Namespace) -> int:
    try:
        argv = split_command(args.command)
        if not args.any_command and os.path.basename(argv[0]) not in LAUNCHERS:
            raise CommandError(
                f"the command must start with torchrun or modeltest, not {argv[0]!r} "
                "(add --any-command to run another harness)"
            )
        cases = bad_case_list(args.bad_case_result)
    except (CommandError, DumpFormatError) as error:
        print(f"llmprec logitsdump: error: {error}", file=sys.stderr)
        return 2
    return run_command(argv, {**os.environ, **logits_dump_env(cases, args.token_range)})
