"""Decoder layers in node names: ``root.model.layers.3.mlp`` belongs to layer 3."""

from __future__ import annotations

import re

_LAYER = re.compile(r"(?:^|[./])(?:layers|layer|blocks|block|h)[./](\d+)(?=[./]|$)")
"""``layers.3`` (Llama, Qwen, Mistral), ``layer.3`` (BERT), ``blocks.3``, ``h.3`` (GPT-2, Falcon)."""


def layer_index(name: str) -> int | None:
    """The decoder layer a node or pair key belongs to (its first layer segment), or None."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None
