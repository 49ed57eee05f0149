"""``llmprec opcheck -i DIR``: msit's opcheck command line on the opcheck engine (msit-spec §1.3)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import LlmprecError

PROGRESS_SECONDS = 2.0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "opcheck",
        help="check every operator of a dump against its reference (msit llm opcheck)",
        description="Recompute each operator of a dump (ATB, torch hook or FX dump) from its dumped inputs "
        "and compare its outputs; writes llmprec_opcheck_report_{time}.csv.",
    )
    parser.add_argument(
        "-i", "--input", required=True, help="dump folder (for ATB: at or below a token folder)"
    )
    parser.add_argument("-o", "--output", default=".", help="existing folder for the report (default .)")
    parser.add_argument(
        "-ids", "--operation-ids", default="", help="only these op ids and their descendants, e.g. 3,5_1"
    )
    parser.add_argument(
        "-opname", "--operation-name", default=None, help="only ops whose type contains one of these (a,b)"
    )
    parser.add_argument(
        "-metric",
        "--precision-metric",
        nargs="+",
        default=[],
        choices=("abs", "cos_sim", "kl"),
        help="extra msit metric columns",
    )
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, help="worker processes, 1..8 (ignored with -rerun)"
    )
    parser.add_argument("-device", "--device-id", type=int, default=0, help="NPU to use with -rerun")
    parser.add_argument(
        "-rerun",
        "--atb-rerun",
        action="store_true",
        help="re-execute ATB ops on the NPU (needs torch_npu, ATB)",
    )
    parser.add_argument(
        "--standard", default="default", choices=("default", "msit"), help="the standard deciding exit status"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..standards import Layer
    from .report import case_rows, report_path, write_report
    from .run import check_cases, plan_opcheck, summary_lines

    output = Path(args.output)
    if not output.is_dir():
        print(f"llmprec opcheck: -o {output}: no such folder", file=sys.stderr)
        return 2
    if not 1 <= args.jobs <= 8:
        print(f"llmprec opcheck: -j {args.jobs}: choose 1..8", file=sys.stderr)
        return 2
    started = time.gmtime()
    try:
        plan = plan_opcheck(args.input, ids=args.operation_ids or None, names=args.operation_name)
    except (LlmprecError, OSError) as exc:
        print(f"llmprec opcheck: -i {args.input}: {exc}", file=sys.stderr)
        return 2
    if plan.empty_reason:
        print(f"llmprec opcheck: {plan.empty_reason}", file=sys.stderr)
        return 2
    kernels, device, jobs = {}, None, args.jobs
    if args.atb_rerun:
        from .rerun import atb_kernels

        try:
            kernels, device = atb_kernels({case.op_type for case in plan.cases}, args.device_id)
        except LlmprecError as exc:
            print(f"llmprec opcheck: {exc}", file=sys.stderr)
            return 2
        jobs = 1
    layers = [Layer("command line", profile=args.standard)]
    metrics = args.precision_metric
    results, rows = [], []
    total, last = len(plan.cases), time.monotonic()
    interrupted = False
    try:
        for result in check_cases(
            plan.cases, kernels=kernels, device=device, layers=layers, metrics=metrics, jobs=jobs
        ):
            results.append(result)
            rows += case_rows(result)
            if time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                print(f"llmprec opcheck: {len(results)}/{total} cases checked", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
    path = write_report(report_path(output, started), rows, metrics)
    for line in summary_lines(results, plan, str(path)):
        print(line)
    if interrupted:
        print(f"llmprec opcheck: interrupted after {len(results)} of {total} cases", file=sys.stderr)
        return 130
    return 0 if all(result.status in ("passed", "not checkable") for result in results) else 1
