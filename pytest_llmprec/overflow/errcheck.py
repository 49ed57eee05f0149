"""``llmprec errcheck --exec CMD``: find where a PyTorch program's model overflows, without changing it.

The program runs with the start-up hook of ``llmprec dump --exec``; in each of its Python processes
that imports torch, every module's outputs are scanned (``startup.py``) and each detection is
written to ``{OUTPUT}/msit_overflow_res_{pid}.txt`` (msit's format) and a details CSV. Where
torch_npu and ATB are installed, msit's ATB environment contract is set as well, so that Ascend's
own probe (when preloaded) reports ATB operators too. Importable without torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..capture.process import CommandError, check_script, split_command

ERRCHECK_ENV = "LLMPREC_ERRCHECK"
OVERFLOW_EXIT_CODE = 65
"""The exit code of a program ended by ``--exit`` at its first overflow (sysexits' EX_DATAERR)."""

DESCRIPTION = f"""\
Run a PyTorch program and report the modules whose outputs overflow (NaN, +-Inf, or values at
+- the largest finite value, where Ascend's saturation mode clamps), without editing the program.

Every module of every model is checked as it returns, in execution order. Per process, at its
first detection:
  OUTPUT/msit_overflow_res_{{pid}}.txt       one line per overflowing operator, msit's format:
                                           Overflow detected! Operator name: <module>:<class>
  OUTPUT/llmprec_overflow_details_{{pid}}.csv  counts, first index and value of each overflowing tensor
No file is written when nothing overflows. The program's exit code is passed through; with --exit
the program ends at the first detection with exit code {OVERFLOW_EXIT_CODE}.

examples:
  llmprec errcheck --exec "python run.py --prompt hi" -o overflow
  llmprec errcheck --exec "python run.py" --exit
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "errcheck",
        help="run a PyTorch program and report where its model overflows (no code change)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exec", dest="command", required=True, metavar="CMD", help="the command to run")
    parser.add_argument(
        "-o", "--output", default="", metavar="DIR", help="folder of the result files (default: current)"
    )
    parser.add_argument(
        "--exit",
        dest="stop",
        action="store_true",
        help=f"end the program at the first detection (exit code {OVERFLOW_EXIT_CODE})",
    )
    parser.add_argument(
        "--type",
        nargs="+",
        choices=("overflow",),
        default=["overflow"],
        help="what to check (msit: overflow)",
    )
    parser.add_argument(
        "--no-saturation",
        dest="saturation",
        action="store_false",
        help="do not count values at +- the largest finite value as overflow (only NaN and Inf)",
    )
    parser.set_defaults(handler=run_errcheck)
    return parser


def atb_environment(output: str, stop: bool) -> dict[str, str]:
    """msit's ATB errcheck contract (msit-spec §1.4, §7) when torch_npu is importable and ATB is set
    up (``ATB_HOME_PATH``, exported by ATB's set_env.sh); else nothing."""
    if importlib.util.find_spec("torch_npu") is None or not os.environ.get("ATB_HOME_PATH"):
        return {}
    return {
        "ATB_CHECK_TYPE": "1",
        "ATB_OUTPUT_DIR": os.path.realpath(output),
        "ATB_EXIT": "1" if stop else "0",
    }


def read_statuses(folder: str) -> list[dict[str, Any]]:
    statuses = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            statuses.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return statuses


def summary_lines(statuses: list[dict[str, Any]]) -> list[str]:
    """What the command prints at the end: per process, the checks made and the first detection."""
    if not any(status.get("calls") for status in statuses):
        return ["llmprec errcheck: nothing was checked (no nn.Module forward call was seen)"]
    lines = []
    for status in statuses:
        work = f"{status['calls']} module calls in {status['forwards']} forwards"
        if not status["detections"]:
            lines.append(f"llmprec errcheck: process {status['pid']}: no overflow in {work}")
            continue
        lines.append(
            f"llmprec errcheck: process {status['pid']}: {status['detections']} detection(s) in {work}"
        )
        lines += [f"  {line}" for line in status["first"]]
        lines += [f"  results: {path}" for path in status["files"]]
    return lines


def run_errcheck(args: argparse.Namespace) -> int:
    from ..capture.exec import run_with_startup_hook

    try:
        argv = split_command(args.command)
        check_script(argv)
        output = os.path.abspath(args.output or os.curdir)
        os.makedirs(output, exist_ok=True)
    except (CommandError, OSError) as error:
        print(f"llmprec errcheck: error: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="llmprec-errcheck-") as status:
        spec = {"output": output, "status": status, "exit": args.stop, "saturation": args.saturation}
        environment = {ERRCHECK_ENV: json.dumps(spec), **atb_environment(output, args.stop)}
        code = run_with_startup_hook(argv, "errcheck", environment)
        statuses = read_statuses(status)
    for line in summary_lines(statuses):
        print(line, file=sys.stderr)
    return code
