"""Indexing speed: ``load_dump`` against a plain ``os.walk`` over the same dump tree.

Builds, in a temporary folder removed afterwards, an msit torch-layout dump of about 100,000
empty files (tokens x modules of a 32-layer Llama-shaped model x input/output files), an ATB
dump of similar size and a GE dump of 10,000 small files, then times ``os.walk`` (counting files)
and ``load_dump`` on each, page cache warm, best of 3. Torch and ATB indexing reads no file, so
empty files measure what matters there (listing); GE indexing parses each file's protobuf header.

    python benchmarks/bench_index.py [--files 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_llmprec.dumps import load_dump

LAYERS = 32


def _llama_modules() -> list[tuple[str, str, list[str]]]:
    """(module name, class name, dump files) of a Llama-shaped model, children before parents."""
    modules = [("root.model.embed_tokens", "Embedding", ["input_0", "output"])]
    for layer in range(LAYERS):
        prefix = f"root.model.layers.{layer}"
        attention = [f"{prefix}.self_attn.{name}_proj" for name in ("q", "k", "v", "o")]
        mlp = [f"{prefix}.mlp.{name}_proj" for name in ("gate", "up", "down")]
        modules += [(f"{prefix}.input_layernorm", "LlamaRMSNorm", ["input_0", "output"])]
        modules += [(name, "Linear", ["input_0", "output"]) for name in attention]
        pair = ["input_0", "output_0", "output_1"]
        modules += [(f"{prefix}.self_attn.rotary_emb", "LlamaRotaryEmbedding", pair)]
        modules += [(f"{prefix}.self_attn", "LlamaAttention", pair)]
        modules += [(f"{prefix}.post_attention_layernorm", "LlamaRMSNorm", ["input_0", "output"])]
        modules += [(name, "Linear", ["input_0", "output"]) for name in mlp]
        modules += [(f"{prefix}.mlp.act_fn", "SiLU", ["input_0", "output"])]
        modules += [(f"{prefix}.mlp", "LlamaMLP", ["input_0", "output"])]
        modules += [(prefix, "LlamaDecoderLayer", ["input_0", "output_0"])]
    modules += [
        ("root.model.norm", "LlamaRMSNorm", ["input_0", "output"]),
        ("root.model", "LlamaModel", ["input_0", "output_0"]),
        ("root.lm_head", "Linear", ["input_0", "output"]),
        ("root", "LlamaForCausalLM", ["input_0", "output_0"]),
    ]
    return modules


def _model_tree(modules: list[tuple[str, str, list[str]]]) -> dict:
    nodes = {name: {"name": name, "type": class_name, "children": []} for name, class_name, _ in modules}
    for name in reversed([name for name, _, _ in modules]):
        if name != "root":
            parent = name.rsplit(".", 1)[0]
            while parent not in nodes:
                parent = parent.rsplit(".", 1)[0]
            nodes[parent]["children"].insert(0, nodes[name])
    return nodes["root"]


def _touch(path: str) -> None:
    with open(path, "wb"):
        pass


def build_torch_dump(base: Path, files: int) -> tuple[Path, int]:
    modules = _llama_modules()
    per_token = sum(len(leaves) for _, _, leaves in modules)
    tokens = max(1, round(files / per_token))
    device = base / "msit_dump_20240102_030405" / "torch_tensors" / "npu0_1234"
    device.mkdir(parents=True)
    (device / "model_tree.json").write_text(json.dumps(_model_tree(modules)))
    for token in range(tokens):
        for name, _, leaves in modules:
            folder = device / str(token) / name
            folder.mkdir(parents=True)
            for leaf in leaves:
                _touch(f"{folder}/{leaf}.pth")
    return base / "msit_dump_20240102_030405", tokens * per_token


def _atb_ops() -> list[tuple[str, int, int]]:
    """(op folder path, inputs, outputs) of one round of a Llama-shaped ATB model."""
    ops = [("0_WordEmbedding", 2, 1)]
    children = [
        "0_RmsNormOperation",
        "1_LinearOperation",
        "2_SplitOperation",
        "3_RopeOperation",
        "4_ReshapeAndCacheOperation",
        "5_SelfAttentionOperation",
        "6_LinearOperation",
        "7_ElewiseOperation",
        "8_RmsNormOperation",
        "9_LinearOperation",
        "10_ActivationOperation",
        "11_LinearOperation",
        "12_ElewiseOperation",
    ]
    for layer in range(LAYERS):
        folder = f"{layer + 1}_LlamaLayer"
        ops += [(f"{folder}/{child}", 2, 1) for child in children]
        ops.append((folder, 6, 1))
    ops += [(f"{LAYERS + 1}_RmsNormOperation", 2, 1), (f"{LAYERS + 2}_LmHead", 2, 1)]
    return ops


def build_atb_dump(base: Path, files: int) -> tuple[Path, int]:
    ops = _atb_ops()
    per_token = sum(inputs + outputs for _, inputs, outputs in ops)
    tokens = max(1, round(files / per_token))
    root = base / "msit_dump_20240102_030406"
    for token in range(tokens):
        for op, inputs, outputs in ops:
            folder = root / "tensors" / "0_1234" / str(token) / op
            (folder / "before").mkdir(parents=True)
            (folder / "after").mkdir()
            for index in range(inputs):
                _touch(f"{folder}/before/intensor{index}.bin")
            for index in range(outputs):
                _touch(f"{folder}/after/outtensor{index}.bin")
    return root, tokens * per_token


def build_ge_dump(base: Path, files: int) -> tuple[Path, int]:
    """GE dump files (3 inputs, 1 output each: 4 records, from the header) in token folders of 500 ops."""
    import torch

    from pytest_llmprec.formats import write_ge_dump

    sample = base / "sample"
    base.mkdir(parents=True)
    write_ge_dump(sample, inputs=[torch.zeros(4)] * 3, outputs=[torch.zeros(4)], op_name="Add_0")
    payload = sample.read_bytes()
    sample.unlink()
    root = base / "msit_ge_dump"
    ops_per_token = 500
    tokens = max(1, round(files / ops_per_token))
    for token in range(tokens):
        folder = root / "20240125031118" / "0" / "graph_1" / "1" / str(token)
        folder.mkdir(parents=True)
        for op in range(ops_per_token):
            (folder / f"Add.Add_{op}.{op}.6.17065969{token:03d}{op:05d}").write_bytes(payload)
    return root, tokens * ops_per_token * 4


def _walk(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def _best(function: Callable[[], int], repeat: int) -> tuple[float, int]:
    best, result = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def measure(name: str, root: Path, records: int, repeat: int) -> None:
    _walk(root)  # warm the page cache and the dentry cache
    walk_time, files = _best(lambda: _walk(root), repeat)
    index_time, indexed = _best(lambda: len(load_dump(root).records), repeat)
    if indexed != records:
        raise SystemExit(f"{name}: indexed {indexed} records, expected {records}")
    print(
        f"{name:5s} {files:6d} files {records:6d} records"
        f" | os.walk {walk_time:6.3f} s ({files / walk_time:7.0f} files/s)"
        f" | load_dump {index_time:6.3f} s ({files / index_time:7.0f} files/s)"
        f" | ratio {index_time / walk_time:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="approximate files per dump")
    parser.add_argument("--ge-files", type=int, default=10_000, help="GE dump files (4 tensors each)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (best is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmprec-bench-index-") as tmp:
        for name, build in (("torch", build_torch_dump), ("atb", build_atb_dump)):
            root, files = build(Path(tmp) / name, args.files)
            measure(name, root, files, args.repeat)
        root, tensors = build_ge_dump(Path(tmp) / "ge", args.ge_files)
        measure("ge", root, tensors, args.repeat)


if __name__ == "__main__":
    main()
