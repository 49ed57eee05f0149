"""The README's main job (examples/demo.py) finds its planted bug and leaves the reports."""

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


def test_demo_finds_the_planted_bug_as_first_divergence(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DEMO), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    first = next(line for line in lines if line.startswith("first divergence:"))
    assert first.startswith("first divergence: token0/root.model.layers.1.mlp.act_fn/output (GELU)")
    summary = next(line for line in lines if line.startswith("210 pairs compared"))
    passed = int(summary.split(": ")[1].split()[0])
    assert passed > 150  # bfloat16 rounding alone passes the bfloat16 standard
    assert len(list((tmp_path / "out" / "report").glob("llmprec_cmp_report_*.csv"))) == 1
