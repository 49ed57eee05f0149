"""Golden-input replay at capture: ``DumpConfig(replay=GOLDEN)`` and ``llmprec dump --replay``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_llmprec import DumpConfig, register_hook
from pytest_llmprec.compare import compare_tensors
from pytest_llmprec.dumps import load_dump
from pytest_llmprec.matching import match_dumps

pytest.importorskip("transformers")

from pytest_llmprec.testing.llama import build_llama, dump_tokens, greedy_ids, plant, port, prompt, run_tokens

PROMPT, DECODE = 12, 2


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """(golden model, token ids, golden dump root, folder)."""
    folder = tmp_path_factory.mktemp("replay")
    golden = build_llama(hidden=64, layers=2, heads=4, vocab=128)
    ids = greedy_ids(golden, prompt(golden, PROMPT), new_tokens=DECODE)
    return golden, ids, dump_tokens(golden, ids, PROMPT, folder / "golden"), folder


def process_dir(root: Path) -> Path:
    (found,) = root.glob("torch_tensors/cpu_*")
    return found


def dump_with_replay(model, ids, folder, golden):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = dump_tokens(model, ids, PROMPT, folder, replay=golden)
    return root, [str(w.message) for w in caught if str(w.message).startswith("replay ")]


def red(golden: Path, mine: Path) -> float:
    load = lambda path: torch.load(path, weights_only=True)  # noqa: E731
    return compare_tensors(load(golden), load(mine)).relative_euclidean_distance


def test_replay_leaves_the_model_and_its_dump_as_they_were(llama, tmp_path):
    golden_model, ids, golden, _ = llama
    my = port(golden_model)
    plain_root = dump_tokens(my, ids, PROMPT, tmp_path / "plain")
    expected = run_tokens(my, ids, PROMPT)
    config = DumpConfig(dump_path=tmp_path / "replayed", token_range=list(range(DECODE + 1)), replay=golden)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with register_hook(my, config) as handle:
            logits = run_tokens(my, ids, PROMPT)  # prefill and decode calls on a key/value cache
    assert torch.equal(logits, expected)
    plain, replayed = process_dir(plain_root), handle.dump_dir
    plain_files = sorted(p.relative_to(plain) for p in plain.rglob("*.pth"))
    replay_files = sorted(p.relative_to(replayed) for p in replayed.rglob("replay_*.pth"))
    other_files = sorted(p.relative_to(replayed) for p in replayed.rglob("*.pth") if p.name[:7] != "replay_")
    assert other_files == plain_files and len(replay_files) > 50
    for relative in plain_files:
        a = torch.load(plain / relative, weights_only=True)
        b = torch.load(replayed / relative, weights_only=True)
        assert torch.equal(a, b), relative
    for name in ("model_tree.json", "execution_order.json"):
        assert (plain / name).read_text() == (replayed / name).read_text()


def test_replays_are_indexed_apart_and_matching_is_unchanged(llama, tmp_path):
    golden_model, ids, golden, _ = llama
    my = port(golden_model)
    plain = dump_tokens(my, ids, PROMPT, tmp_path / "plain")
    replayed, _ = dump_with_replay(my, ids, tmp_path / "replayed", golden)
    plain_dump, replay_dump = load_dump(plain), load_dump(replayed)
    assert not plain_dump.replays and not replay_dump.problems
    assert len(replay_dump.records) == len(plain_dump.records)
    assert all(record.role == "replay" for record in replay_dump.replays.values())
    assert (0, "root.model.layers.1.mlp.down_proj", "output", None) in replay_dump.replays
    assert (0, "root.model.rotary_emb", "output_1", None) in replay_dump.replays
    keys = lambda dump: [p.key for p in match_dumps(load_dump(golden), dump).pairs]  # noqa: E731
    assert keys(replay_dump) == keys(plain_dump)


def test_a_replay_measures_the_module_on_golden_inputs(llama, tmp_path):
    golden_model, ids, golden, _ = llama
    my = plant(port(golden_model), "gelu", layer=1)
    root, _ = dump_with_replay(my, ids, tmp_path / "my", golden)
    mine, gold = process_dir(root), process_dir(golden)
    for token in range(DECODE + 1):
        for node in ("root.model.layers.1.mlp.down_proj", "root.model.layers.0.mlp.act_fn", "root.lm_head"):
            replay = red(gold / f"{token}/{node}/output.pth", mine / f"{token}/{node}/replay_output.pth")
            accumulated = red(gold / f"{token}/{node}/output.pth", mine / f"{token}/{node}/output.pth")
            assert replay < 0.01, (token, node, replay)
            if node == "root.lm_head":  # my lm_head's input carries the error of the whole model
                assert accumulated > 2 * replay
        act = "root.model.layers.1.mlp.act_fn"
        assert red(gold / f"{token}/{act}/output.pth", mine / f"{token}/{act}/replay_output.pth") > 0.05


def test_calls_with_a_cache_are_replayed_in_the_first_call_only_and_said_so(llama, tmp_path):
    golden_model, ids, golden, _ = llama
    root, messages = dump_with_replay(port(golden_model), ids, tmp_path / "my", golden)
    mine = process_dir(root)
    attention = "root.model.layers.0.self_attn"
    assert (mine / f"0/{attention}/replay_output_0.pth").is_file()
    assert not list((mine / f"1/{attention}").glob("replay_*"))
    assert list((mine / "1/root.model.layers.0.self_attn.q_proj").glob("replay_*"))
    (message,) = messages
    assert "an argument holds state from earlier calls (a key/value cache)" in message
    assert f"token 1 {attention}" in message or "token 1 root" in message


def test_a_golden_dump_of_other_shapes_is_noted_per_call_and_nothing_breaks(llama, tmp_path):
    golden_model, ids, golden, _ = llama
    my = port(golden_model)
    longer = torch.cat([ids[:, :1], ids], dim=1)  # one id more: every prefill tensor is longer
    expected = run_tokens(my, longer, PROMPT + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = DumpConfig(dump_path=tmp_path / "my", token_range=[0], replay=golden)
        with register_hook(my, config) as handle:
            logits = run_tokens(my, longer, PROMPT + 1)
    assert torch.equal(logits, expected)
    assert not list(Path(handle.dump_dir).rglob("replay_*"))
    (message,) = [str(w.message) for w in caught if str(w.message).startswith("replay ")]
    assert "0 module calls replayed" in message
    assert "golden's shape (1, 12) differs from mine (1, 13)" in message


class Noisy(nn.Module):
    """Draws random numbers and counts its calls in a buffer: replay must not disturb either."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x) + torch.rand(4)


def test_replay_keeps_random_numbers_and_buffers_as_without_it(tmp_path):
    model = Noisy()
    x = torch.ones(2, 4)

    def run(replay):
        torch.manual_seed(5)
        model.calls.zero_()
        with register_hook(
            model, DumpConfig(dump_path=tmp_path / "runs", token_range=[0, 1], replay=replay)
        ) as h:
            outputs = [model(x), model(x)]
        return outputs, model.calls.clone(), h.root_dir

    plain, calls, golden = run(None)
    replayed, replay_calls, root = run(golden)
    assert all(torch.equal(a, b) for a, b in zip(plain, replayed, strict=True))
    assert torch.equal(calls, replay_calls)
    replay = next(Path(root).glob("torch_tensors/cpu_*/1/root.linear/replay_output.pth"))
    with torch.no_grad():
        assert torch.equal(torch.load(replay, weights_only=True), model.linear(x))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"replay": "missing-dump"}, r"replay: .*missing-dump: no such file or folder"),
        ({"replay": 3}, "replay must be the path of a golden torch dump"),
        ({"replay": "GOLDEN", "dump_last_logits": True}, "replay saves module outputs"),
        ({"replay": "GOLDEN", "dump_statistics_mode": 1}, "replay saves module outputs"),
        ({"replay": "OUTPUTS_ONLY"}, "holds no module inputs"),
    ],
)
def test_bad_replay_settings_are_value_errors(tmp_path, settings, message):
    roots = []
    for folder, part in ((tmp_path / "golden", 2), (tmp_path / "outputs", 1)):
        model = Noisy()
        with register_hook(model, DumpConfig(dump_path=folder, tensor_part=part)) as handle:
            model(torch.ones(4))
        roots.append(handle.root_dir)
    golden_dir, outputs_only = roots
    places = {
        "GOLDEN": str(golden_dir),
        "OUTPUTS_ONLY": str(outputs_only),
        "missing-dump": str(tmp_path / "missing-dump"),
    }
    settings = {
        key: places.get(value, value) if isinstance(value, str) else value for key, value in settings.items()
    }
    with pytest.raises(ValueError, match=message):
        DumpConfig(dump_path=tmp_path / "my", **settings)


SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from pytest_llmprec.testing.llama import build_llama, port, run_tokens
    model = build_llama(hidden=64, layers=2, heads=4, vocab=128)
    if sys.argv[1] == "bf16":
        model = port(model)
    ids = torch.load(sys.argv[2], weights_only=True)
    run_tokens(model, ids, int(sys.argv[3]))
    """
)


def test_dump_exec_replay_writes_replays_for_the_modules_of_the_root(llama, tmp_path):
    _, ids, golden, _ = llama
    script, ids_file = tmp_path / "run.py", tmp_path / "ids.pth"
    script.write_text(SCRIPT)
    torch.save(ids, ids_file)
    command = f"{sys.executable} {script} bf16 {ids_file} {PROMPT}"
    argv = ["dump", "--exec", command, "-o", str(tmp_path / "my"), "--tokens", "0-2", "--replay", str(golden)]
    run = subprocess.run([sys.executable, "-m", "pytest_llmprec.cli", *argv], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    (mine,) = (tmp_path / "my").glob("msit_dump_*/torch_tensors/cpu_*")
    assert (mine / "0/root.model.layers.1.mlp/replay_output.pth").is_file()
    assert (mine / "2/root.model.layers.1.mlp.down_proj/replay_output.pth").is_file()
    assert not list((mine / "0/root").glob("replay_*"))
    assert "1 calls: its keyword arguments were not seen before it ran (token 0 root)" in run.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "pytest_llmprec.cli", *argv[:-1], str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "nothing: no such file or folder" in bad.stderr
