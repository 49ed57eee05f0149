"""Report rows as the comparison session builds them, from real tensors written as real .npy files."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import torch

from pytest_llmprec import compare_tensors
from pytest_llmprec.dumps.base import TensorRecord
from pytest_llmprec.report.rows import comparison_row, error_row, row_sort_key
from pytest_llmprec.standards import get_standard, judge

NODES = ("self_attn.q_proj", "mlp.act_fn", "mlp.down_proj")
BROKEN = (1, "mlp.act_fn")
"""The planted bug: layer 1's activation output gets noise of 0.3 standard deviations, every token."""


def _save(path: Path, tensor: torch.Tensor) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, tensor.numpy())
    return str(path)


def decoder_rows(
    folder: Path, layers: int = 4, tokens: int = 2, elements: int = 256, unreadable: str | None = None
) -> list[dict]:
    """Rows of a small decoder: ``tokens`` x ``layers`` x NODES pairs in execution order, golden
    float32 vs my float32 with 1e-5 relative noise, BROKEN off by 10%. ``unreadable`` names a node
    whose pairs become error rows (their my file is garbage)."""
    generator = torch.Generator().manual_seed(0)
    standard = get_standard("default", "torch.float32")
    rows, order = [], 0
    for token in range(tokens):
        for layer in range(layers):
            for node in NODES:
                name = f"root.model.layers.{layer}.{node}"
                key = f"token{token}/{name}/output"
                golden = torch.randn(elements, generator=generator)
                noise = torch.randn(elements, generator=generator) * 1e-5
                broken = (layer, node) == BROKEN
                my = (
                    golden + torch.randn(elements, generator=generator) * 0.3
                    if broken
                    else golden * (1 + noise)
                )
                files = [_save(folder / side / str(token) / name / "output.npy", t) for side, t in
                         (("golden", golden), ("my", my))]  # fmt: skip
                records = [
                    TensorRecord(f, token, name, "output", node_type="Linear", order=order) for f in files
                ]
                if node == unreadable:
                    Path(files[1]).write_bytes(b"not a tensor")
                    rows.append(error_row(key, order, token, *records, f"{files[1]}: not a tensor file"))
                else:
                    result = compare_tensors(golden, my)
                    rows.append(comparison_row(key, order, token, *records, result, judge(result, standard)))
                order += 1
    rows.sort(key=row_sort_key)
    for index, row in enumerate(rows):
        row["data_id"] = index
    return rows


def embedded(page: str, name: str):
    """The JSON a report page embeds as ``data-{name}``."""
    match = re.search(f'<script type="application/json" id="data-{name}">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def table_rows(page: str, name: str = "pairs") -> list[dict]:
    """The table ``name`` of a report page, decoded (per the format of report/html_table.py) to one
    dict per row: column key -> cell; empty text and NaN as None, links as (href, text)."""
    table = embedded(page, name)
    columns = {}
    for column in table["columns"]:
        if column.get("derive"):
            continue
        values = [column["dictionary"][c] for c in column["codes"]] if "codes" in column else column["values"]
        if column.get("prefix"):
            values = [column["prefix"] + v if isinstance(v, str) else v for v in values]
        if column["kind"] == "float":
            values = [{"inf": float("inf"), "-inf": float("-inf")}.get(v, v) if isinstance(v, str) else v
                      for v in values]  # fmt: skip
        columns[column["key"]] = values
    for column in table["columns"]:
        if column.get("derive") == "deficit":
            source = columns[table["columns"][column["source"]]["key"]]
            columns[column["key"]] = [None if v is None else 1 - v for v in source]
        if "same" in column:
            other = columns[table["columns"][column["same"]]["key"]]
            columns[column["key"]] = [
                o if v == 0 else v for v, o in zip(columns[column["key"]], other, strict=True)
            ]
    for column in table["columns"]:
        if column["kind"] == "link":
            columns[column["key"]] = [
                None if v is None else (column["base"] + re.sub(r"\[[^\[\]]*\]$", "", v), v)
                for v in columns[column["key"]]
            ]
    return [{key: values[i] for key, values in columns.items()} for i in range(table["count"])]


def text_of(page: str) -> str:
    """The page's visible text, roughly (tags removed, entities decoded)."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", page, flags=re.S)))
    return re.sub(r"\s+", " ", text)
