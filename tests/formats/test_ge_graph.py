"""GE graph text files (dynamo_original_graph_*.txt): the writer, the reader, bad files."""

from __future__ import annotations

import pytest

from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import GeGraphOp, read_ge_graph, write_ge_graph
from pytest_llmprec.formats.ge_graph import MAX_DEPTH, parse_text_proto

OPS = [
    GeGraphOp("arg0_1", "Data", (), ("",)),
    GeGraphOp("MatMulV2_2", "MatMulV2", ("arg0_1:0", "arg1_1:0"), ("mm-aten.mm.default.OUTPUT.0",)),
    GeGraphOp("Split_3", "SplitV", ("MatMulV2_2:0", "arg0_1:-1"), ("split-a.OUTPUT.0", "split-a.OUTPUT.1")),
    GeGraphOp('we"ird\\näme', "T", (), ()),
]


def test_written_graphs_read_back(tmp_path):
    path = tmp_path / "dynamo_original_graph_1_rank_0_pid_1_ts_2.txt"
    write_ge_graph(path, OPS, "graph_1")
    graph = read_ge_graph(path)
    assert graph.ops == tuple(OPS)
    assert graph.op("Split_3").producers() == ["MatMulV2_2", None]
    assert "MatMulV2_2" in graph and "nothing" not in graph


def test_the_reader_takes_ge_text_as_ge_writes_it(tmp_path):
    """Nested graph blocks, enum values, repeated lists, comments, single quotes and octal escapes."""
    text = """
    # a GE ModelDef dump
    graph {
      name: 'g'
      op {
        name: "Add_2"
        type: "Add"
        input: "x:0"
        input: "y:0"
        attr { key: "T" value { dt: DT_FLOAT } }
        output_desc {
          dtype: DT_FLOAT16
          shape { dim: [2, 4] }
          attr { key: "_fx_tensor_name" value { s: "add-aten.add.Tensor.OUTPUT.0" } }
        }
      }
      op { name: "\\345\\220\\215" type: "Cast" }
    }
    """
    path = tmp_path / "g.txt"
    path.write_text(text)
    graph = read_ge_graph(path)
    assert [(op.name, op.type, op.inputs, op.fx_tensor_names) for op in graph.ops] == [
        ("Add_2", "Add", ("x:0", "y:0"), ("add-aten.add.Tensor.OUTPUT.0",)),
        ("名", "Cast", (), ()),
    ]
    assert parse_text_proto("a: [1, 2] b { c: d }") == [("a", "1"), ("a", "2"), ("b", [("c", "d")])]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('op { name: "a"', "ends inside a block"),
        ('op { name: "a" } }', "unbalanced '}'"),
        ('op { name "a" }', "has no ':' before its value"),
        ('{ name: "a" }', "a block without a field name"),
        ('op { name: "a\\q" }', "bad escape"),
        ("a " + "{ b " * (MAX_DEPTH + 2), "nested deeper than"),
        ('op { name: "unterminated }', "unexpected text"),
    ],
)
def test_bad_graph_files_are_refused_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DumpFormatError, match=message) as error:
        read_ge_graph(path)
    assert error.value.path == str(path)


def test_a_missing_graph_file_is_a_clear_error(tmp_path):
    with pytest.raises(DumpFormatError, match="cannot read the graph file"):
        read_ge_graph(tmp_path / "missing.txt")
