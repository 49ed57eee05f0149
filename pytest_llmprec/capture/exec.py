"""``llmprec dump --exec CMD``: dump a PyTorch program's model tensors without changing its code.

The command runs without a shell, with this process's stdin/stdout/stderr; ``llmprec dump``
exits with its exit code. A generated ``sitecustomize.py`` first on ``PYTHONPATH`` installs
torch's global module hooks in every Python process of the command that imports torch
(see ``startup.py``); the dump configuration travels in ``$LLMPREC_DUMP_CONFIG``.
``run_with_startup_hook`` is shared with ``llmprec errcheck``, whose start-up hook scans instead
(``$LLMPREC_STARTUP`` names the hook to install).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .config import DumpConfig, dump_timestamp, parse_token_range
from .process import CommandError, check_script, run_command, split_command

CONFIG_ENV = "LLMPREC_DUMP_CONFIG"
PACKAGE_PARENT_ENV = "LLMPREC_PACKAGE_PARENT"
STARTUP_ENV = "LLMPREC_STARTUP"

DESCRIPTION = """\
Run a PyTorch program and dump the tensors of its model, without editing the program.

The model is the first nn.Module called at top level (not inside another module's forward);
each of its forward calls is one token. Files are written in msit's layout:
  OUTPUT/msit_dump_{TS}/torch_tensors/{device}_{pid}/{token}/{module}/input_N.pth, output.pth, ...

examples:
  llmprec dump --exec "python run.py --prompt hi" -o dumps --tokens 0-3
  llmprec dump --exec "python run.py" --select "root.model.layers.0*" --tensor-part 1
  llmprec dump --exec "torchrun --nproc-per-node 2 run.py" --last-logits --tokens 0-31
  llmprec dump --exec "python run.py --dtype bf16" -o my --tokens 0-3 --replay golden/msit_dump_X
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "dump",
        help="run a PyTorch program and dump its model's tensors (no code change)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exec", dest="command", required=True, metavar="CMD", help="the command to run")
    parser.add_argument("-o", "--output", default="./", metavar="DIR", help="dump root folder (default: .)")
    parser.add_argument(
        "--tokens",
        default="0",
        metavar="RANGE",
        help="tokens (forward calls) to dump: 0-3, 0,2,5-7 (default: 0)",
    )
    parser.add_argument(
        "--select",
        metavar="GLOB",
        help="only modules whose full name matches, * = anything: 'root.model.layers.1*'",
    )
    parser.add_argument(
        "--tensor-part", type=int, choices=(0, 1, 2), default=2, help="0 inputs, 1 outputs, 2 both (default)"
    )
    parser.add_argument(
        "--stats",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="0 tensors (default), 1 statistics.csv only, 2 both",
    )
    parser.add_argument("--last-logits", action="store_true", help="dump only the final output of each token")
    parser.add_argument("--api", action="store_true", help="also dump calls of torch functional APIs")
    parser.add_argument("--weights", action="store_true", help="also save the parameters under weights/")
    parser.add_argument("--analyze", action="store_true", help="also append statistics to tensor_analyze.csv")
    parser.add_argument(
        "--device-id", type=int, metavar="N", help="only dump a model on device N (cuda:N, npu:N)"
    )
    parser.add_argument("--root", metavar="CLASS", help="class name (* wildcards) of the model to dump")
    parser.add_argument(
        "--seed", type=int, metavar="N", help="call seed_all(N) when the program imports torch"
    )
    parser.add_argument(
        "--replay",
        metavar="GOLDEN",
        help="a golden torch dump of the same run: also run each dumped module on golden's inputs "
        "of that call and save replay_output*.pth (evidence for the local verdict)",
    )
    parser.set_defaults(handler=run_dump)
    return parser


def dump_settings(args: argparse.Namespace) -> dict[str, object]:
    """The ``DumpConfig`` keyword arguments for ``args`` but ``token_range`` (all checked here, before
    anything runs; the token range travels as its text)."""
    settings: dict[str, object] = {
        "dump_path": os.path.abspath(args.output),
        "tensor_part": args.tensor_part,
        "dump_statistics_mode": args.stats,
        "dump_last_logits": args.last_logits,
        "mode": ["module", "api"] if args.api else ["module"],
        "dump_weight": args.weights,
        "layer_name": args.select,
        "analyze": args.analyze,
        "device_id": args.device_id,
        "replay": None if args.replay is None else os.path.abspath(args.replay),
    }
    DumpConfig(token_range=parse_token_range(args.tokens), **settings)
    settings["seed"] = args.seed
    return settings


def run_with_startup_hook(argv: list[str], startup: str, environment: dict[str, str]) -> int:
    """Run ``argv`` with the start-up hook ``startup`` (``dump`` or ``errcheck``) installed in its
    Python processes and ``environment`` added; the command's exit code."""
    with tempfile.TemporaryDirectory(prefix="llmprec-exec-") as hook_dir:
        shutil.copyfile(
            Path(__file__).with_name("_sitecustomize.py"), os.path.join(hook_dir, "sitecustomize.py")
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [hook_dir, env.get("PYTHONPATH")]))
        env[PACKAGE_PARENT_ENV] = str(Path(__file__).resolve().parents[2])
        env[STARTUP_ENV] = startup
        env.update(environment)
        return run_command(argv, env)


def run_dump(args: argparse.Namespace) -> int:
    try:
        argv = split_command(args.command)
        settings = dump_settings(args)
        check_script(argv)
    except (CommandError, ValueError) as error:
        print(f"llmprec dump: error: {error}", file=sys.stderr)
        return 2
    timestamp = dump_timestamp()
    with tempfile.TemporaryDirectory(prefix="llmprec-seen-") as seen_dir:
        seen_file = os.path.join(seen_dir, "top_level_classes.txt")
        spec = {
            "config": settings,
            "tokens": args.tokens,
            "root": args.root,
            "timestamp": timestamp,
            "seen_file": seen_file,
        }
        code = run_with_startup_hook(argv, "dump", {CONFIG_ENV: json.dumps(spec)})
        seen = Path(seen_file).read_text(encoding="utf-8").split() if os.path.exists(seen_file) else []
    dumps = sorted(Path(str(settings["dump_path"])).glob("msit_dump_*"))
    if any(path.name >= f"msit_dump_{timestamp}" for path in dumps):
        return code
    if seen and args.root:
        classes = ", ".join(dict.fromkeys(seen))
        print(
            f"llmprec dump: nothing was dumped: forward calls of {classes} were seen, "
            f"none of a class matching --root {args.root!r}",
            file=sys.stderr,
        )
    else:
        print("llmprec dump: nothing was dumped (no nn.Module forward call was seen)", file=sys.stderr)
    return code or 1
