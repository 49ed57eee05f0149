"""Teacher forcing: the ids golden's run fed its model at each token, read from golden's dump.

When greedy decoding diverges, my run generates other tokens and every later token compares
different sequences. Feed my model golden's ids instead: ``golden_decode_inputs(dump)[t]`` is the
``input_ids`` of golden's call ``t`` (the prompt at token 0, then one generated id per decode call).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DECODE_INPUT_LEAVES = ("kwarg_input_ids", "input_0")
"""How a torch dump names the root module's ids: ``model(input_ids=...)``, then ``model(ids)``."""


def golden_decode_inputs(dump: str | os.PathLike[str]) -> list[torch.Tensor]:
    """The root module's ``input_ids`` of each token of a torch dump (register_hook, llmprec dump),
    in token order; ``ValueError`` naming the dump when a token has none."""
    from ..dumps import load_dump

    index = load_dump(dump)
    found: dict[int | str, dict[str, object]] = {}
    for record in index:
        if record.node == "root" and record.leaf in DECODE_INPUT_LEAVES:
            found.setdefault(record.token, {})[record.leaf] = record
    missing = [token for token in index.tokens() if token not in found]
    if missing or not found:
        raise ValueError(
            f"{dump}: no input_ids of the root module for token {missing[0] if missing else 0} "
            f"(looked for {', '.join(DECODE_INPUT_LEAVES)})"
        )
    tensors = []
    for token in index.tokens():
        leaves = found[token]
        record = next(leaves[leaf] for leaf in DECODE_INPUT_LEAVES if leaf in leaves)
        tensors.append(record.load())
    return tensors
