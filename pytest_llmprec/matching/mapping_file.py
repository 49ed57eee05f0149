"""``--llm-mapping-file``: golden node names that differ on the my side.

The file is a JSON object mapping a golden node name to the my node name. A key and value that
both end in ``*`` map a prefix: ``{"root.model.*": "root.transformer.*"}`` sends
``root.model.layers.0.mlp`` to ``root.transformer.layers.0.mlp``. Exact names win over
prefixes; the longest matching prefix wins among prefixes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import DumpFormatError

MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class NameMapping:
    exact: dict[str, str]
    prefixes: tuple[tuple[str, str], ...]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NameMapping:
        try:
            if os.path.getsize(path) > MAX_BYTES:
                raise DumpFormatError(path, f"mapping file larger than {MAX_BYTES} bytes")
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise DumpFormatError(path, f"cannot read the mapping file: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DumpFormatError(path, f"the mapping file is not valid JSON: {exc}") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: object, path: str | os.PathLike[str] = "<mapping>") -> NameMapping:
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise DumpFormatError(path, 'expected a JSON object of names, e.g. {"golden.name": "my.name"}')
        exact, prefixes = {}, []
        for golden, my in data.items():
            if golden.endswith("*") != my.endswith("*"):
                raise DumpFormatError(path, f"{golden!r} -> {my!r}: use '*' on both sides to map a prefix")
            if golden.endswith("*"):
                prefixes.append((golden[:-1], my[:-1]))
            else:
                exact[golden] = my
        prefixes.sort(key=lambda item: len(item[0]), reverse=True)
        return cls(exact, tuple(prefixes))

    def __call__(self, golden_node: str) -> str:
        """The my-side name of ``golden_node`` (itself when not mapped)."""
        if golden_node in self.exact:
            return self.exact[golden_node]
        for prefix, replacement in self.prefixes:
            if golden_node.startswith(prefix):
                return replacement + golden_node[len(prefix) :]
        return golden_node
