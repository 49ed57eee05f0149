"""``llmprec errcheck --exec``: a program that does not import pytest_llmprec, checked for overflow."""

from __future__ import annotations

import csv
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
from overflow_models import BEFORE_IT, OVERFLOWING

from pytest_llmprec.cli import main
from pytest_llmprec.overflow.errcheck import OVERFLOW_EXIT_CODE

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"

PROGRAM = textwrap.dedent(
    f"""
    import sys
    sys.path[:0] = [{str(HERE)!r}, {str(EXAMPLES)!r}]
    import tiny_llm
    import torch
    from overflow_models import overflowing_model, prompt
    model = overflowing_model() if sys.argv[1] == "overflow" else tiny_llm.build_model(seed=0, dtype=torch.float16)
    tiny_llm.generate(model, prompt(), 2)
    print("generated")
    sys.exit(3)
    """
)
LINE = re.compile(r"Overflow detected! Operator name: (\S+):(\w+)")


def errcheck(tmp_path: Path, *arguments: str, program: str = PROGRAM, options: tuple[str, ...] = ()) -> int:
    script = tmp_path / "run.py"
    script.write_text(program)
    command = " ".join([sys.executable, str(script), *arguments])
    return main(["errcheck", "--exec", command, "-o", str(tmp_path / "out"), *options])


def test_overflow_is_reported_in_msit_format_and_the_exit_code_passes_through(tmp_path, capfd):
    code = errcheck(tmp_path, "overflow")
    captured = capfd.readouterr()
    assert code == 3 and "generated" in captured.out
    (result,) = (tmp_path / "out").glob("msit_overflow_res_*.txt")
    lines = result.read_text().splitlines()
    assert all(LINE.fullmatch(line) for line in lines)
    assert lines[:3] == [
        f"Overflow detected! Operator name: {OVERFLOWING}:Linear",
        "Overflow detected! Operator name: root.model.norm:RMSNorm",
        "Overflow detected! Operator name: root.lm_head:Linear",
    ]
    assert lines.count(lines[0]) == 2  # once per forward (token)
    pid = result.stem.rsplit("_", 1)[1]
    with open(tmp_path / "out" / f"llmprec_overflow_details_{pid}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = rows[0]
    assert (first["module"], first["class"], first["call"], first["forward"], first["tensor"]) == (
        OVERFLOWING,
        "Linear",
        "0",
        "0",
        "output",
    )
    assert int(first["pos_inf_count"]) > 0 and first["last_finite_module"] == f"{BEFORE_IT} (call 0)"
    assert [row["inner_overflow"] for row in rows[:3]] == ["False", "True", "True"]
    assert (
        f"llmprec errcheck: process {pid}: 14 detection(s) in 70 module calls in 2 forwards" in captured.err
    )
    assert f"overflow first in {OVERFLOWING} (Linear), call 0 in forward 0" in captured.err


def test_exit_ends_the_program_at_the_first_detection(tmp_path, capfd):
    code = errcheck(tmp_path, "overflow", options=("--exit",))
    captured = capfd.readouterr()
    assert code == OVERFLOW_EXIT_CODE
    assert "generated" not in captured.out
    assert (
        f"llmprec errcheck: overflow in {OVERFLOWING} (Linear), call 0 in forward 0: ending the program"
        in captured.err
    )
    (result,) = (tmp_path / "out").glob("msit_overflow_res_*.txt")
    assert result.read_text() == f"Overflow detected! Operator name: {OVERFLOWING}:Linear\n"


def test_a_program_that_does_not_overflow_leaves_no_file(tmp_path, capfd):
    code = errcheck(tmp_path, "clean")
    captured = capfd.readouterr()
    assert code == 3
    assert list((tmp_path / "out").iterdir()) == []
    assert re.search(r"process \d+: no overflow in 70 module calls in 2 forwards", captured.err)


def test_a_program_without_models_is_said_to_check_nothing(tmp_path, capfd):
    code = errcheck(tmp_path, program="print('no torch here')\n")
    assert code == 0
    assert "nothing was checked (no nn.Module forward call was seen)" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("", "the command is empty"),
        ("no-such-program-llmprec run.py", "'no-such-program-llmprec' was not found on PATH"),
        ("{python} {missing}", "missing.py': no such file (the Python script to run)"),
        ("{python} -u {empty} --flag", "empty.py' is empty: there is no program to run"),
    ],
)
def test_a_program_that_does_not_exist_or_is_empty_is_a_clear_error(tmp_path, capfd, command, message):
    (tmp_path / "empty.py").write_text("")
    command = command.format(
        python=sys.executable, missing=tmp_path / "missing.py", empty=tmp_path / "empty.py"
    )
    code = main(["errcheck", "--exec", command, "-o", str(tmp_path / "out")])
    captured = capfd.readouterr()
    assert code == 2
    assert captured.err.startswith("llmprec errcheck: error: ") and message in captured.err
    assert not (tmp_path / "out").exists()


ENVIRONMENT = "import os\nprint({key: os.environ.get(key) for key in ('ATB_CHECK_TYPE', 'ATB_OUTPUT_DIR', 'ATB_EXIT')})\n"


def test_msits_atb_environment_is_set_where_torch_npu_and_atb_are_installed(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("ATB_HOME_PATH", raising=False)
    errcheck(tmp_path, program=ENVIRONMENT)
    assert "{'ATB_CHECK_TYPE': None, 'ATB_OUTPUT_DIR': None, 'ATB_EXIT': None}" in capfd.readouterr().out
    fake = tmp_path / "site"
    (fake / "torch_npu").mkdir(parents=True)
    (fake / "torch_npu" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.setenv("ATB_HOME_PATH", str(tmp_path / "atb"))
    errcheck(tmp_path, program=ENVIRONMENT, options=("--exit",))
    output = os.path.realpath(tmp_path / "out")
    assert (
        f"{{'ATB_CHECK_TYPE': '1', 'ATB_OUTPUT_DIR': '{output}', 'ATB_EXIT': '1'}}" in capfd.readouterr().out
    )


def test_help_describes_the_result_files(capsys):
    with pytest.raises(SystemExit):
        main(["errcheck", "--help"])
    text = capsys.readouterr().out
    assert "msit_overflow_res_{pid}.txt" in text and "--exit" in text and str(OVERFLOW_EXIT_CODE) in text
