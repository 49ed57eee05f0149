"""Cross-runtime matching speed: ``match_dumps`` of a torch dump against an ATB dump of one model.

Writes (once; later runs reuse the folder) the torch dump and the ATB dump of a Llama-style model
of 20 and of 40 layers over 9 forward calls (over 10,000 tensors per side at 40 layers) with the
test suite's writers (``tests/matching/llama_dumps.py``: the project's torch capture, ATB topology
JSONs and ``.bin`` files), then times, page cache warm, best of ``--repeat``: ``os.walk`` over
both dumps (the baseline), ``load_dump`` of both, and ``match_dumps`` (the tree matching: trees,
policies, file pairing, including the header reads of the pairs heuristic rules propose).

    python benchmarks/bench_matching.py [--folder DIR] [--calls 9] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "matching")]

from pytest_llmprec.dumps import load_dump  # noqa: E402
from pytest_llmprec.matching import match_dumps  # noqa: E402


def write(folder: Path, layers: int, calls: int) -> tuple[Path, Path]:
    """The two dumps of a ``layers``-layer model, written unless ``folder`` already holds them."""
    done = folder / "done.json"
    if done.is_file():
        paths = json.loads(done.read_text())
        return Path(paths["torch"]), Path(paths["atb"])
    from llama_dumps import LlamaConfig, build_llama, sequences, write_atb_dump, write_torch_dump

    config = LlamaConfig(num_layers=layers, max_positions=64)
    model = build_llama(config)
    inputs = sequences(config, prompt=4, steps=calls - 1)
    print(f"writing the {layers}-layer dumps in {folder} (once) ...", file=sys.stderr)
    torch_root = write_torch_dump(model, inputs, folder / "torch")
    atb_root = write_atb_dump(model, inputs, folder / "atb").root
    done.write_text(json.dumps({"torch": str(torch_root), "atb": str(atb_root)}))
    return torch_root, atb_root


def best(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def walk(*roots: Path) -> int:
    return sum(len(files) for root in roots for _, _, files in os.walk(root))


def measure(folder: Path, layers: int, calls: int, repeat: int) -> dict:
    torch_root, atb_root = write(folder / f"layers{layers}-calls{calls}", layers, calls)
    walk_s, files = best(lambda: walk(torch_root, atb_root), repeat)
    index_s, dumps = best(lambda: (load_dump(torch_root), load_dump(atb_root)), repeat)
    golden, my = dumps
    match_s, result = best(lambda: match_dumps(golden, my), repeat)
    return {
        "layers": layers,
        "torch tensors": len(golden),
        "atb tensors": len(my),
        "files": files,
        "pairs": len(result.pairs),
        "unmatched": len(result.unmatched),
        "os.walk s": round(walk_s, 3),
        "load_dump s": round(index_s, 3),
        "match_dumps s": round(match_s, 3),
        "match / os.walk": round(match_s / walk_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "llmprec-bench-matching")
    parser.add_argument("--calls", type=int, default=9, help="forward calls (tokens) per dump")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = [measure(args.folder, layers, args.calls, args.repeat) for layers in (20, 40)]
    for row in results:
        print(json.dumps(row))
    small, large = results
    per_pair = [row["match_dumps s"] / row["pairs"] * 1e6 for row in results]
    print(
        f"match_dumps: {small['match_dumps s']} s for {small['pairs']} pairs (20 layers), "
        f"{large['match_dumps s']} s for {large['pairs']} pairs (40 layers): "
        f"{per_pair[0]:.1f} vs {per_pair[1]:.1f} us per pair, time ratio "
        f"{large['match_dumps s'] / small['match_dumps s']:.2f} for a node ratio of "
        f"{large['atb tensors'] / small['atb tensors']:.2f}"
    )


if __name__ == "__main__":
    main()
