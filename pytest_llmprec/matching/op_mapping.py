"""``--llm-op-mapping-file``: msit's ATB-to-torch operator type mapping (msit-spec §5.6).

The file is a flat JSON object. A key ``AtbType[_fileStem]`` maps to a list of
``TorchType[_fileStem]`` values: the text before the first ``_`` is a type, matched as a substring
of the node types; the rest, if any, names one file (``outtensor0`` is the ATB file
``after/outtensor0.bin``, ``output_0`` the torch file ``output_0.pth``), else all outputs are
compared. Keys and values may only hold ``[A-Za-z0-9_]``. The file's entries are added to the
built-in ones, replacing entries with the same key; a plain string value counts as a one-item list
(msit iterates it character by character). The path may name the file or, as msit's ``-mf``, the
folder holding ``op_mapping_file.json``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ..errors import DumpFormatError

MAPPING_FILE_NAME = "op_mapping_file.json"
MAX_BYTES = 1024 * 1024
ALL_OUTPUT = "*output"
"""Location: every output file of a node."""
ALL_INPUT = "*input"
"""Location: every input file of a node."""

_NAME = re.compile(r"[A-Za-z0-9_]*")

BUILTIN_CUSTOM = {
    "CommonLayer_outtensor0": ("GLMBlock_output_0", "BloomBlock_output_0"),
    "MlpGateLayerV2": ("BloomMLP", "MLP"),
    "RmsNormOperation": ("RMSNorm",),
    "SelfAttentionOperation": ("CoreAttention",),
}
"""msit's built-in custom mapping (substring types, matched over all nodes of a layer pair)."""

BUILTIN_LEAF = (("LayerNormOperation", "LayerNorm"), ("LinearOperation", "Linear"))
"""msit's built-in leaf mapping (exact types, matched over the leaves of a layer pair)."""


@dataclass(frozen=True)
class MappingEntry:
    """One ATB type -> torch type rule; ``*_location`` is a file stem or ``ALL_OUTPUT``."""

    key: str
    atb_type: str
    atb_location: str
    torch_type: str
    torch_location: str
    source: str


def _split(text: str, atb: bool) -> tuple[str, str]:
    """``LinearOperation_outtensor0`` -> (``LinearOperation``, ``after/outtensor0``)."""
    type_, _, stem = text.partition("_")
    if not stem:
        return type_, ALL_OUTPUT
    return type_, f"after/{stem}" if atb else stem


@dataclass(frozen=True)
class OpMapping:
    """The custom (substring) entries in key order; ``source`` names the file they came from."""

    entries: tuple[MappingEntry, ...]
    source: str = "built-in"

    @classmethod
    def builtin(cls) -> OpMapping:
        return cls.from_dict({}, "built-in")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OpMapping:
        """Read and validate a mapping file (or ``DIR/op_mapping_file.json``); ``DumpFormatError`` if bad."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, MAPPING_FILE_NAME)
        try:
            size = os.path.getsize(path)
            if size > MAX_BYTES:
                raise DumpFormatError(path, f"op mapping file of {size} bytes exceeds {MAX_BYTES} bytes")
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise DumpFormatError(path, f"cannot read the op mapping file: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DumpFormatError(path, f"the op mapping file is not valid JSON: {exc}") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: object, source: str = "<op mapping>") -> OpMapping:
        """The built-in entries updated with ``data`` (``{"AtbType[_file]": ["TorchType[_file]", ...]}``)."""
        example = '{"RmsNormOperation": ["RMSNorm"], "LinearOperation_outtensor0": ["Linear_output"]}'
        if not isinstance(data, dict):
            raise DumpFormatError(source, f"expected a JSON object such as {example}")
        merged: dict[str, tuple[str, ...]] = dict(BUILTIN_CUSTOM)
        for key, value in data.items():
            values = (value,) if isinstance(value, str) else value
            if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
                raise DumpFormatError(source, f"{key!r}: the value must be a list of torch type names")
            for name in (key, *values):
                if not name or not _NAME.fullmatch(name) or name.startswith("_"):
                    raise DumpFormatError(
                        source, f"{key!r}: {name!r} is not a type name (letters, digits, '_'; e.g. {example})"
                    )
            merged[key] = tuple(values)
        entries = []
        for key, values in merged.items():
            origin = "built-in" if key in BUILTIN_CUSTOM and key not in data else source
            atb_type, atb_location = _split(key, atb=True)
            for value in values:
                torch_type, torch_location = _split(value, atb=False)
                entries.append(MappingEntry(key, atb_type, atb_location, torch_type, torch_location, origin))
        return cls(tuple(entries), source)

    def user_entries(self) -> tuple[MappingEntry, ...]:
        """The entries that came from the file (not the built-in ones)."""
        return tuple(entry for entry in self.entries if entry.source != "built-in")
