"""``llmprec dump --exec``: dumping a program that does not import pytest_llmprec."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiny_llm
import torch
from capture_helpers import EXAMPLES, load, names

from pytest_llmprec import DumpConfig, register_hook
from pytest_llmprec.cli import main

ROOT = Path(__file__).resolve().parents[2]

GENERATE = textwrap.dedent(
    f"""
    import sys
    sys.path.insert(0, {str(EXAMPLES)!r})
    import tiny_llm
    model = tiny_llm.build_model(seed=0)
    ids = tiny_llm.generate(model, tiny_llm.sample_prompt(length=6), int(sys.argv[1]))
    model.lm_head(tiny_llm.torch.zeros(64))  # a top-level call of another module: not dumped
    print("generated", ids.tolist())
    sys.exit(3)
    """
)


KERNELS_FUNCTION = textwrap.dedent(
    """
    import torch
    from kernels import use_kernel_forward_from_hub

    @use_kernel_forward_from_hub("Twice")
    def twice(x):  # a module of its own class once decorated, as transformers 5's apply_rotary_pos_emb
        return 2 * x

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def forward(self, x):
            return twice(self.proj(x))

    Model()(torch.ones(2, 4))
    """
)


def the_dump(output: Path) -> Path:
    (dump,) = output.glob("msit_dump_*/torch_tensors/cpu_*")
    return dump


def test_dump_exec_matches_register_hook(tmp_path, capfd):
    script = tmp_path / "run.py"
    script.write_text(GENERATE)
    assert "pytest_llmprec" not in script.read_text()
    argv = ["--tokens", "0-1", "--select", "root.model.layers.1*", "--stats", "2"]
    code = main(["dump", "--exec", f"{sys.executable} {script} 3", "-o", str(tmp_path / "exec"), *argv])
    captured = capfd.readouterr()
    assert code == 3
    assert "generated [[" in captured.out
    assert "not dumping top-level Linear (dumping TinyForCausalLM)" in captured.err
    exec_dump = the_dump(tmp_path / "exec")

    model = tiny_llm.build_model(seed=0)
    config = DumpConfig(
        dump_path=tmp_path / "hook",
        token_range=[0, 1],
        layer_name="root.model.layers.1*",
        dump_statistics_mode=2,
    )
    with register_hook(model, config) as handle:
        tiny_llm.generate(model, tiny_llm.sample_prompt(length=6), 3)
    assert names(exec_dump) == names(handle.dump_dir) == {"0", "1", "model_tree.json", "execution_order.json"}
    for name in ("model_tree.json", "execution_order.json"):
        assert (exec_dump / name).read_text() == (handle.dump_dir / name).read_text()
    hook_files = sorted(
        path.relative_to(handle.dump_dir) for path in handle.dump_dir.rglob("*") if path.is_file()
    )
    exec_files = sorted(path.relative_to(exec_dump) for path in exec_dump.rglob("*") if path.is_file())
    assert exec_files == hook_files
    assert len(hook_files) > 40
    for relative in hook_files:
        if relative.suffix == ".pth":
            assert torch.equal(load(exec_dump / relative), load(handle.dump_dir / relative)), relative
        else:
            assert (exec_dump / relative).read_text() == (handle.dump_dir / relative).read_text()


def test_dump_exec_root_choice_last_logits_and_chained_sitecustomize(tmp_path, capfd, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "marker"
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    script = tmp_path / "run.py"
    script.write_text(
        "import torch\ntorch.nn.Linear(2, 2)(torch.ones(2))\n" + GENERATE.replace("sys.exit(3)", "")
    )
    options = ["-o", str(tmp_path), "--tokens", "0,1", "--last-logits", "--root", "Tiny*LM"]
    code = main(["dump", "--exec", f"{sys.executable} {script} 2", *options])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert marker.read_text() == "ran"
    assert "not dumping top-level Linear" in captured.err
    dump = the_dump(tmp_path)
    assert names(dump) == {"0", "1", "model_tree.json", "execution_order.json"}
    model = tiny_llm.build_model(seed=0)
    ids = tiny_llm.generate(model, tiny_llm.sample_prompt(length=6), 2)
    for token in (0, 1):
        assert names(dump / str(token)) == {"root.lm_head"}
        with torch.no_grad():
            expected = model(ids[:, : 6 + token])
        assert torch.equal(load(dump / str(token) / "root.lm_head" / "output.pth"), expected)


ECHO = textwrap.dedent(
    """
    import sys
    line = sys.stdin.readline()
    print("stdout:", line.strip())
    print("stderr:", " ".join(sys.argv[1:]), file=sys.stderr)
    sys.exit(7)
    """
)


def test_output_stdin_and_exit_code_pass_through(tmp_path):
    script = tmp_path / "echo.py"
    script.write_text(ECHO)
    command = f"{sys.executable} {script} 'two words' plain"
    result = subprocess.run(
        [sys.executable, "-m", "pytest_llmprec.cli", "dump", "--exec", command, "-o", str(tmp_path / "out")],
        input="hello\n",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.returncode == 7  # the command's own failure, even though nothing was dumped
    assert result.stdout == "stdout: hello\n"
    assert "stderr: two words plain\n" in result.stderr
    assert "nothing was dumped" in result.stderr


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("", [], "the command is empty"),
        ("   ", [], "the command is empty"),
        ("python 'unclosed", [], "cannot split the command"),
        ("no-such-program-llmprec run.py", [], "'no-such-program-llmprec' was not found on PATH"),
        ("./missing/run.sh", [], "'./missing/run.sh' is not an executable file"),
        ("python run.py", ["--tokens", "3-1"], "ends before it starts"),
        ("python run.py", ["--tokens", "a"], "is not a token id"),
    ],
)
def test_bad_exec_input_exits_2_and_runs_nothing(tmp_path, capfd, command, extra, message):
    code = main(["dump", "--exec", command, "-o", str(tmp_path / "out"), *extra])
    captured = capfd.readouterr()
    assert code == 2
    assert captured.err.startswith("llmprec dump: error: ")
    assert message in captured.err
    assert captured.out == ""
    assert not (tmp_path / "out").exists()


def test_the_command_line_does_not_import_torch():
    code = (
        "import sys, pytest_llmprec.cli, pytest_llmprec.capture.exec, pytest_llmprec.capture.logits\n"
        "pytest_llmprec.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60
    )
    assert result.returncode == 0


def test_a_root_that_matches_no_class_says_which_classes_ran_and_exits_non_zero(tmp_path, capfd):
    script = tmp_path / "run.py"
    script.write_text("import torch\ntorch.nn.Linear(2, 2)(torch.ones(2))\ntorch.nn.ReLU()(torch.ones(2))\n")
    code = main(["dump", "--exec", f"{sys.executable} {script}", "-o", str(tmp_path), "--root", "Nope*"])
    err = capfd.readouterr().err
    assert code == 1
    assert (
        "llmprec dump: nothing was dumped: forward calls of Linear, ReLU were seen, "
        "none of a class matching --root 'Nope*'"
    ) in err
    assert "no nn.Module forward call was seen" not in err
    assert not list(tmp_path.glob("msit_dump_*"))


def test_functions_that_kernels_runs_as_modules_are_not_dumped_as_modules(tmp_path, capfd):
    pytest.importorskip("kernels")
    script = tmp_path / "run.py"
    script.write_text(KERNELS_FUNCTION)
    assert main(["dump", "--exec", f"{sys.executable} {script}", "-o", str(tmp_path / "exec")]) == 0
    assert sorted(path.name for path in (the_dump(tmp_path / "exec") / "0").iterdir()) == [
        "root",
        "root.proj",
    ]
