"""Large runs: item granularity (--llm-item), xdist gateways with chdir, --dist loadgroup, path maps."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from torch_dumps import read_report, write_torch_dump

pytest.importorskip("xdist")

ARANGE = torch.arange(1.0, 9.0).reshape(2, 4)
MODULES = {
    "root.model.embed_tokens": ("output",),
    "root.model.layers.0.attn": ("input_0", "output_0"),
    "root.model.layers.0.mlp": ("input_0", "output_0"),
    "root.model.layers.1.attn": ("input_0", "output_0"),
    "root.model.layers.1.mlp": ("input_0", "output_0"),
    "root.model.norm": ("output",),
}
PAIRS = 2 * sum(len(leaves) for leaves in MODULES.values())
BROKEN = ("root.model.layers.1.attn", "root.model.layers.1.mlp")
"""Modules whose output_0 the "my" dump scales by 1.0625 in token 0 (red 0.0625: fails)."""


def model_dump(broken: bool) -> dict:
    def token(t: int) -> dict:
        modules = {}
        for position, (module, leaves) in enumerate(MODULES.items()):
            scale = 1.0625 if broken and t == 0 and module in BROKEN else 1.0
            modules[module] = {
                leaf: (ARANGE + position + t) * (scale if leaf == "output_0" else 1.0) for leaf in leaves
            }
        return modules

    return {0: token(0), 1: token(1)}


@pytest.fixture
def dumps(tmp_path):
    golden = write_torch_dump(tmp_path / "golden", model_dump(broken=False), list(MODULES))
    my = write_torch_dump(tmp_path / "my", model_dump(broken=True), list(MODULES))
    return golden, my


def run(pytester, golden, my, report_dir, *args, subprocess=False, **kwargs):
    common = [f"--llm-golden={golden}", f"--llm-my={my}", "-p", "no:cacheprovider", "-rN"]
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return runner(*common, f"--llm-report-dir={report_dir}", *args, **kwargs)


@pytest.mark.parametrize(
    ("item", "passed", "failed"),
    [("tensor", PAIRS - 2, 2), ("module", 10, 2), ("layer", 7, 1), ("token", 1, 1)],
)
def test_every_granularity_reports_the_rows_of_tensor_mode(pytester, dumps, tmp_path, item, passed, failed):
    golden, my = dumps
    run(pytester, golden, my, tmp_path / "tensor").assert_outcomes(passed=PAIRS - 2, failed=2)
    result = run(pytester, golden, my, tmp_path / f"by-{item}", f"--llm-item={item}")
    result.assert_outcomes(passed=passed, failed=failed)
    header, rows = read_report(tmp_path / f"by-{item}")
    assert len(rows) == PAIRS
    assert (header, rows) == read_report(tmp_path / "tensor")
    result.stdout.fnmatch_lines(["*first divergence: token0/root.model.layers.1.attn/output_0*"])


def test_ini_sets_the_granularity(pytester, dumps, tmp_path):
    golden, my = dumps
    pytester.makeini("[pytest]\nllm_item = token\n")
    run(pytester, golden, my, tmp_path / "r").assert_outcomes(passed=1, failed=1)


def test_unknown_granularity_is_a_usage_error(pytester, dumps, tmp_path):
    golden, my = dumps
    result = run(pytester, golden, my, tmp_path / "r", "--llm-item=rank")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llm-item=rank: unknown item granularity; choose one of tensor, module*"])


def test_a_failing_layer_item_lists_its_failing_tensors_first_divergence_first(pytester, dumps, tmp_path):
    golden, my = dumps
    result = run(pytester, golden, my, tmp_path / "r", "--llm-item=layer", "-k", "token0 and layer1")
    result.assert_outcomes(failed=1)
    text = result.stdout.str().split(" llmprec ===")[0]  # the failure, not the summary
    assert "2 of 4 tensors failed in token0/layer1 (first divergence first):" in text
    attn = text.index("pair token0/root.model.layers.1.attn/output_0")
    mlp = text.index("pair token0/root.model.layers.1.mlp/output_0")
    assert attn < mlp
    assert "relative_euclidean_distance" in text  # each tensor's usual detail
    assert "golden: " in text and "my:     " in text
    assert "layers.1.mlp/input_0" not in text  # passing tensors are not listed


def test_keyword_selects_coarse_items_by_node_name(pytester, dumps, tmp_path):
    golden, my = dumps
    selected = run(pytester, golden, my, tmp_path / "r", "--llm-item=token", "-k", "layers.1.mlp")
    selected.assert_outcomes(passed=1, failed=1)  # both tokens hold that node
    module = run(pytester, golden, my, tmp_path / "m", "--llm-item=module", "-k", "layers.0 and token1")
    module.assert_outcomes(passed=2)
    assert run(pytester, golden, my, tmp_path / "n", "--llm-item=layer", "-k", "nothing").ret == 5


@pytest.mark.parametrize(
    "extra", [["--dist", "load"], ["--dist", "loadgroup"], ["--dist", "loadgroup", "--llm-item=module"]]
)
def test_popen_gateways_with_chdir_give_the_serial_report(pytester, dumps, tmp_path, extra):
    golden, my = dumps
    serial = run(pytester, golden, my, tmp_path / "serial", subprocess=True)
    serial.assert_outcomes(passed=PAIRS - 2, failed=2)
    workdir = tmp_path / "workers"
    workdir.mkdir()
    result = run(
        pytester,
        golden,
        my,
        tmp_path / "parallel",
        "--tx",
        f"2*popen//chdir={workdir}",
        *extra,
        subprocess=True,
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*first divergence: token0/root.model.layers.1.attn/output_0*"])
    assert read_report(tmp_path / "serial") == read_report(tmp_path / "parallel")


@pytest.mark.parametrize("verdict", ["accumulated", "local"])
def test_loadgroup_gives_each_layer_of_a_token_to_one_worker(pytester, dumps, tmp_path, verdict):
    # under the local verdict a worker judges every pair of a token it takes: whole tokens then
    golden, my = dumps
    options = ("-n", "2", "--dist", "loadgroup", "-v", f"--llm-verdict={verdict}")
    result = run(pytester, golden, my, tmp_path / "r", *options, subprocess=True)
    ran = re.findall(
        r"\[(gw\d)\] \[ *\d+%\] (?:PASSED|FAILED) llm/(token\d)/root\.model\.(layers\.\d)\.",
        result.stdout.str(),
    )
    workers: dict[tuple[str, str], set[str]] = {}
    for worker, token, layer in ran:
        workers.setdefault((token, layer) if verdict == "accumulated" else token, set()).add(worker)
    assert len(ran) == 16 and len(workers) == (4 if verdict == "accumulated" else 2)
    assert all(len(used) == 1 for used in workers.values()), workers


def test_path_map_reads_the_dumps_at_the_new_prefix_on_workers(pytester, dumps, tmp_path):
    golden, my = dumps
    mounted = tmp_path / "mounted"
    shutil.copytree(tmp_path, mounted, ignore=shutil.ignore_patterns("mounted"))
    # the workers' copy of "my" has token 1's layer 0 MLP output broken as well
    leaf = next((mounted / "my").rglob("1/root.model.layers.0.mlp/output_0.pth"))
    torch.save(torch.zeros(2, 4), leaf)
    result = run(
        pytester,
        golden,
        my,
        tmp_path / "r",
        "-n",
        "2",
        f"--llm-path-map={tmp_path}={mounted}",
        subprocess=True,
    )
    result.assert_outcomes(passed=PAIRS - 3, failed=3)
    _, rows = read_report(tmp_path / "r")
    assert all(row["my_data_path"].startswith(str(my)) for row in rows)  # the controller's paths
    failed = [row["pair_key"] for row in rows if row["verdict"] == "failed"]
    assert "token1/root.model.layers.0.mlp/output_0" in failed


def test_a_worker_that_cannot_read_the_dumps_fails_naming_the_path(pytester, dumps, tmp_path):
    golden, my = dumps
    missing = tmp_path / "not-mounted"
    result = run(
        pytester, golden, my, tmp_path / "r", "--tx", f"2*popen//chdir={tmp_path}", "--dist", "load",
        f"--llm-path-map={tmp_path}={missing}", subprocess=True, timeout=120,
    )  # fmt: skip
    assert result.ret not in (0, pytest.ExitCode.INTERRUPTED)
    result.stdout.fnmatch_lines(
        [f"*llmprec on xdist worker gw*: --llm-golden={missing}/golden*no such file*"]
    )


def test_bad_path_map_is_a_usage_error(pytester, dumps, tmp_path):
    golden, my = dumps
    result = run(pytester, golden, my, tmp_path / "r", "--llm-path-map=/only-old")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llm-path-map: '/only-old': expected OLD=NEW*"])


def test_passing_setup_and_teardown_reports_are_not_kept_yet_summaries_and_junit_are_whole(
    pytester, dumps, tmp_path
):
    # the terminal reporter keeps every report to the end; those of passing phases cost memory only
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_terminal_summary(terminalreporter):
            kept = terminalreporter.stats.get("", [])
            terminalreporter.write_line(f"phase reports kept: {len(kept)}")
        """
    )
    junit = tmp_path / "out.xml"
    result = run(pytester, *dumps, tmp_path / "r", "-rA", f"--junitxml={junit}")
    result.assert_outcomes(passed=PAIRS - 2, failed=2)
    result.stdout.fnmatch_lines(["phase reports kept: 0", "PASSED llm/token0/root.model.embed_tokens/output"])
    xml = junit.read_text()
    assert xml.count('<property name="cosine_similarity"') == PAIRS
    assert xml.count('<property name="verdict"') == PAIRS
