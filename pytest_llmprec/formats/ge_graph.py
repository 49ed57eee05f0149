"""GE graph text files of TorchAir (``dynamo_original_graph_*.txt``, msit-spec §2.5.5): read and write.

The files are the GE graph in protobuf text format. Every ``op { ... }`` block, at any depth, is
an operation: its ``name``, ``type``, ``input`` entries (``"{producer}:{index}"``) and, per
``output_desc``, the ``_fx_tensor_name`` attribute (``"{fx node}-{aten target}.OUTPUT.{i}"``) that
ties a GE output to the FX node it came from. Parsed without protobuf and without recursion; a file
that is not such text raises ``DumpFormatError`` naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import DumpFormatError

MAX_BYTES = 1 << 30
MAX_DEPTH = 64
FX_TENSOR_NAME = "_fx_tensor_name"

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(?P<punct>[{}:\[\],;<>])|(?P<word>[^\s{}:\[\],;<>"'#]+)"""
)
_ESCAPES = {"n": 10, "t": 9, "r": 13, '"': 34, "'": 39, "\\": 92, "a": 7, "b": 8, "f": 12, "v": 11, "?": 63}


@dataclass(frozen=True)
class GeGraphOp:
    """One operation of a GE graph; ``fx_tensor_names`` has one entry per ``output_desc`` ("" if none)."""

    name: str
    type: str
    inputs: tuple[str, ...] = ()
    fx_tensor_names: tuple[str, ...] = ()

    def producers(self) -> list[str | None]:
        """The producing op of each data input (None for a control edge ``name:-1``)."""
        found = []
        for entry in self.inputs:
            producer, _, index = entry.rpartition(":")
            found.append(None if index.startswith("-") else producer or entry)
        return found


@dataclass(frozen=True)
class GeGraph:
    """The operations of one graph file, in file order."""

    path: str
    ops: tuple[GeGraphOp, ...]
    _by_name: dict[str, GeGraphOp] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for op in self.ops:
            self._by_name.setdefault(op.name, op)

    def op(self, name: str) -> GeGraphOp | None:
        return self._by_name.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name


def _unescape(path: str, text: str) -> str:
    """A protobuf text string literal (without its quotes) as text (escapes are UTF-8 bytes)."""
    if "\\" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in ("x", "X"):
            digits = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2 :])
            if digits is None:
                raise DumpFormatError(path, f"bad escape in string {text!r}")
            out.append(int(digits.group(), 16))
            i += 2 + len(digits.group())
        elif code.isdigit():
            digits = re.match(r"[0-7]{1,3}", text[i + 1 :])
            out.append(int(digits.group(), 8) & 0xFF)
            i += 1 + len(digits.group())
        else:
            raise DumpFormatError(path, f"bad escape in string {text!r}")
    return out.decode("utf-8", errors="replace")


Message = list[tuple[str, "str | Message"]]


def parse_text_proto(text: str, path: str = "<text>") -> Message:
    """A protobuf text message as nested ``[(field, value)]`` lists (scalars as strings)."""
    root: Message = []
    stack: list[Message] = [root]
    key: str | None = None
    expect_value = False
    in_list = False
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() != position:
            raise DumpFormatError(
                path, f"unexpected text at offset {position}: {text[position : position + 20]!r}"
            )
        position = match.end()
        string, punct, word = match.group("string"), match.group("punct"), match.group("word")
        if string is None and punct is None and word is None:
            continue  # blank or comment
        if punct in ("{", "<"):
            if key is None:
                raise DumpFormatError(path, f"a block without a field name at offset {match.start()}")
            if len(stack) > MAX_DEPTH:
                raise DumpFormatError(path, f"blocks nested deeper than {MAX_DEPTH} levels")
            block: Message = []
            stack[-1].append((key, block))
            stack.append(block)
            key, expect_value = None, False
        elif punct in ("}", ">"):
            if len(stack) == 1 or key is not None:
                raise DumpFormatError(path, f"unbalanced '{punct}' at offset {match.start()}")
            stack.pop()
        elif punct == ":":
            if key is None or expect_value:
                raise DumpFormatError(path, f"unexpected ':' at offset {match.start()}")
            expect_value = True
        elif punct == "[":
            if key is None:
                raise DumpFormatError(path, f"unexpected '[' at offset {match.start()}")
            in_list = True
        elif punct == "]":
            in_list, key, expect_value = False, None, False
        elif punct in (",", ";"):
            continue
        elif key is None:
            key = word if word is not None else _unescape(path, string[1:-1])
        elif expect_value or in_list:
            value = word if string is None else _unescape(path, string[1:-1])
            stack[-1].append((key, value))
            if not in_list:
                key, expect_value = None, False
        else:
            raise DumpFormatError(
                path, f"field {key!r} has no ':' before its value at offset {match.start()}"
            )
    if position != len(text):
        raise DumpFormatError(path, f"unexpected text at offset {position}")
    if len(stack) != 1 or key is not None:
        raise DumpFormatError(path, "the text ends inside a block (missing '}')")
    return root


def _scalars(message: Message, key: str) -> list[str]:
    return [value for name, value in message if name == key and isinstance(value, str)]


def _blocks(message: Message, key: str) -> list[Message]:
    return [value for name, value in message if name == key and not isinstance(value, str)]


def _fx_name(desc: Message) -> str:
    for attr in _blocks(desc, "attr"):
        if FX_TENSOR_NAME in _scalars(attr, "key"):
            for value in _blocks(attr, "value"):
                names = _scalars(value, "s")
                if names:
                    return names[0]
    return ""


def read_ge_graph(path: str | os.PathLike[str]) -> GeGraph:
    """The operations of a GE graph text file."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise DumpFormatError(path, f"graph file of {size} bytes exceeds {MAX_BYTES} bytes")
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise DumpFormatError(path, f"cannot read the graph file: {exc.strerror or exc}") from None
    ops = []
    stack = [iter(parse_text_proto(text, path))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        name, value = item
        if isinstance(value, str):
            continue
        if name != "op":
            stack.append(iter(value))
            continue
        ops.append(
            GeGraphOp(
                (_scalars(value, "name") or [""])[0],
                (_scalars(value, "type") or [""])[0],
                tuple(_scalars(value, "input")),
                tuple(_fx_name(desc) for desc in _blocks(value, "output_desc")),
            )
        )
    return GeGraph(path, tuple(ops))


def _quoted(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def write_ge_graph(path: str | os.PathLike[str], ops: Sequence[GeGraphOp], name: str = "graph") -> None:
    """Write ``ops`` as a GE graph text file (the fields ``read_ge_graph`` reads, in GE's layout)."""
    lines = [f"name: {_quoted(name)}"]
    for op in ops:
        lines += ["op {", f"  name: {_quoted(op.name)}", f"  type: {_quoted(op.type)}"]
        lines += [f"  input: {_quoted(entry)}" for entry in op.inputs]
        for index, fx_name in enumerate(op.fx_tensor_names):
            lines += ["  output_desc {", f'    name: "y{index}"', "    dtype: DT_FLOAT"]
            if fx_name:
                lines += [
                    "    attr {",
                    f"      key: {_quoted(FX_TENSOR_NAME)}",
                    "      value {",
                    f"        s: {_quoted(fx_name)}",
                    "      }",
                    "    }",
                ]
            lines.append("  }")
        lines.append("}")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
