"""Issue 17, pytest-free parts: FX dumps judged by their original dtype."""

from __future__ import annotations

import torch

from pytest_llmprec.capture import fx_dump_backend
from pytest_llmprec.dumps import load_dump
from pytest_llmprec.pipeline import CompareSettings, Comparison


def _fx_dump(folder, dtype):
    def layer(x, w):
        return torch.tanh(x @ w) * 3

    torch._dynamo.reset()
    compiled = torch.compile(layer, backend=fx_dump_backend(folder, model_name="m"))
    generator = torch.Generator().manual_seed(0)
    x, w = torch.randn(8, 64, generator=generator), torch.randn(64, 32, generator=generator)
    with torch.no_grad():
        compiled(x.to(dtype), w.to(dtype))
    return folder / "msit_fx_dump"


def test_fx_dump_of_bf16_run_is_judged_by_the_bf16_standard(tmp_path):
    golden, my = _fx_dump(tmp_path / "g", torch.float32), _fx_dump(tmp_path / "m", torch.bfloat16)
    records = load_dump(my).records
    assert records and {r.original_dtype for r in records} == {"torch.bfloat16"}
    comparison = Comparison(CompareSettings(golden=golden, my=my, report_dir=tmp_path / "r"))
    done = list(comparison.evaluations())
    assert len(done) == len(records)
    failed = [d.message for d in done if not d.passed]
    assert failed == []  # the float32 standard fails the bf16-rounded mm and tanh outputs
    assert {d.verdict.standard.name for d in done} == {
        Comparison(CompareSettings()).standard("x", "torch.float32", "torch.bfloat16").name
    }


def test_a_broken_fx_sidecar_is_a_dump_problem_and_the_file_dtype_is_used(tmp_path):
    my = _fx_dump(tmp_path / "m", torch.bfloat16)
    (sidecar,) = (tmp_path / "m" / "msit_fx_nodes").rglob("*.json")
    sidecar.write_text("{not json")
    dump = load_dump(my)
    assert {r.original_dtype for r in dump.records} == {None}
    assert [p.path for p in dump.problems] == [str(sidecar)]
    assert "not JSON" in dump.problems[0].message


def test_llmprec_compare_refuses_an_output_that_is_a_file_before_comparing(tmp_path, capsys):
    from torch_dumps import write_torch_dump

    from pytest_llmprec.cli import main

    dump = write_torch_dump(tmp_path / "g", {0: {"root.a": {"output": torch.ones(3)}}})
    output = tmp_path / "out"
    output.write_text("a file")
    assert main(["compare", "-gp", str(dump), "-mp", str(dump), "-o", str(output)]) == 2
    assert (
        capsys.readouterr().err == f"llmprec compare: error: --output={output}: exists and is not a folder\n"
    )
