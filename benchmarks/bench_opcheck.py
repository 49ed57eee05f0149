"""Cost of opcheck over the dump of a transformer, against a plain read of the same files.

A Hugging Face Llama (random weights, bfloat16, hidden 1024, 20 layers by default: more than 200
operator cases) runs one prefill under register_hook(dump_weight=True). Then, in one process:
  read      every file the cases use (inputs, outputs, weights) loaded with TensorRecord.load and
            copied once (so that memory-mapped files are really read);
  opcheck   find_cases + check_case for every case (reading, float64 reference, both standards).
Both are timed twice, cold and warm alike (the read runs first and again after), the best counting. Printed:
wall times, their ratio (target <= 3x), the float64 matrix products of the Linear cases alone (the
floor of their references), and the reference and comparison cost per op type.

With the ATB operator references registered (pytest_llmprec/opcheck/atb.py: LinearOperation,
RmsNormOperation, ActivationOperation), the same modules are also written as an ATB-layout dump
(msit-spec §2.2: {i}_{OpType}/after/intensorN.bin, outtensorN.bin, op_param.json, written with
formats.save_atb_bin) and measured the same way.

On a machine whose cores are shared, torch's intra-op threads spin against each other: use --threads 1.

Run: python benchmarks/bench_opcheck.py [--hidden 1024] [--layers 20] [--seq 64] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "opcheck"))

from pytest_llmprec import DumpConfig, register_hook
from pytest_llmprec.dumps import load_dump
from pytest_llmprec.opcheck import find_cases, is_known, load_inputs, load_outputs
from pytest_llmprec.opcheck.check import check_case

LINEAR_OPS = ("Linear", "LinearOperation")
ATB_OPS = {
    "Linear": "LinearOperation",
    "LlamaRMSNorm": "RmsNormOperation",
    "SiLUActivation": "ActivationOperation",
}


def build(args: argparse.Namespace) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
        num_key_value_heads=args.hidden // 128,
        max_position_embeddings=4 * args.seq,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval().to(torch.bfloat16)


def files_of(cases) -> list:
    records = []
    for case in cases:
        records += case.inputs + case.outputs
        records += [w for w in case.weights.values() if hasattr(w, "load")]
    return records


def read_all(records) -> int:
    """Load every file and touch every byte (a copy: memory-mapped loads read nothing until then)."""
    return sum(record.load().clone().numel() for record in records)


def measure(name: str, dump_path: Path) -> None:
    dump = load_dump(dump_path)
    started = time.perf_counter()
    cases = find_cases(dump)
    find_seconds = time.perf_counter() - started
    records = files_of(cases)
    volume = sum(Path(record.path).stat().st_size for record in records)
    read_seconds = min(_timed(lambda: read_all(records)) for _ in range(2))
    per_type = defaultdict(lambda: [0, 0.0, 0.0])
    check_seconds = math.inf
    for _ in range(2):
        started = time.perf_counter()
        results = [check_case(case, metrics=()) for case in cases]
        check_seconds = min(check_seconds, time.perf_counter() - started + find_seconds)
    read_seconds = min(read_seconds, _timed(lambda: read_all(records)))
    gemm_seconds = gemm_floor(cases)
    for result in results:
        entry = per_type[result.case.op_type]
        entry[0] += 1
        entry[1] += result.reference_seconds
        entry[2] += result.compare_seconds
    statuses = defaultdict(int)
    for result in results:
        statuses[result.status] += 1
    print(f"--- {name}: {len(cases)} cases, {len(records)} files, {volume / 2**20:.0f} MiB; {dict(statuses)}")
    print(f"  read     {read_seconds:7.2f} s")
    print(
        f"  opcheck  {check_seconds:7.2f} s   ({check_seconds / read_seconds:.2f}x the read; "
        f"find_cases {find_seconds:.3f} s)"
    )
    print(
        f"  float64 GEMMs of the Linear cases alone {gemm_seconds:7.2f} s "
        f"({gemm_seconds / read_seconds:.2f}x the read): the floor of their float64 references"
    )
    print("  per op type: cases, reference ms/case, compare ms/case")
    for op_type, (count, reference, compare) in sorted(per_type.items(), key=lambda item: -item[1][1]):
        print(f"    {op_type:24s} {count:4d} {1000 * reference / count:9.2f} {1000 * compare / count:9.2f}")


def gemm_floor(cases) -> float:
    """Seconds of the matrix products of the Linear cases in float64, operands widened beforehand."""
    operands = []
    for case in cases:
        if case.op_type in LINEAR_OPS:
            inputs = load_inputs(case)
            weight = case.weights["weight"].load() if "weight" in case.weights else inputs[1]
            operands.append((inputs[0].double(), weight.double()))
    return min(_timed(lambda: [torch.nn.functional.linear(x, w) for x, w in operands]) for _ in range(2))


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def write_atb(torch_dump: Path, folder: Path) -> Path | None:
    """The torch dump's Linear/RMSNorm/SiLU modules as ATB op folders, in execution order."""
    if not all(is_known(op) for op in ATB_OPS.values()):
        return None
    from atb_layout import token_folder, write_op

    token = token_folder(folder)
    for index, case in enumerate(find_cases(load_dump(torch_dump))):
        op = ATB_OPS.get(case.op_type)
        if op is None:
            continue
        inputs, outputs = load_inputs(case), load_outputs(case)
        if op == "LinearOperation":
            params = {"transposeA": False, "transposeB": True, "hasBias": False, "outDataType": -1}
            inputs.append(case.weights["weight"].load())
        elif op == "RmsNormOperation":
            params = {"layerType": 1, "normParam": {"epsilon": case.params["variance_epsilon"]}}
            inputs.append(case.weights["weight"].load())
        else:
            params = {"activationType": 4, "scale": 1.0}
        write_op(token / f"{index}_{op}", inputs, outputs, params)
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_opcheck_"))
    try:
        model = build(args)
        ids = torch.randint(0, args.vocab, (1, args.seq), generator=torch.Generator().manual_seed(1))
        with register_hook(model, DumpConfig(dump_path=work, dump_weight=True)) as handle, torch.no_grad():
            model(ids)
        del model
        print(
            f"Llama bf16, hidden {args.hidden}, {args.layers} layers, {args.seq} tokens; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads"
        )
        measure("torch dump", handle.dump_dir)
        atb = write_atb(handle.dump_dir, work / "atb")
        if atb is None:
            print("--- ATB dump: skipped (the ATB operator references are not registered in this checkout)")
        else:
            measure("ATB dump", atb)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
