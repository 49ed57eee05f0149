"""The background writer: bounded memory, atomic files, errors surfaced, nothing lost at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from capture_helpers import EXAMPLES, hidden_files, load, names

from pytest_llmprec import DumpConfig, register_hook
from pytest_llmprec.capture import writer as writer_module
from pytest_llmprec.capture.writer import DumpWriteError, DumpWriter, atomic_write

ROOT = Path(__file__).resolve().parents[2]


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "t.pth"

    def fails_half_way(temporary: str) -> None:
        Path(temporary).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(target), fails_half_way)
    assert list(tmp_path.iterdir()) == []
    atomic_write(str(target), lambda temporary: Path(temporary).write_bytes(b"whole"))
    assert names(tmp_path) == {"t.pth"}
    assert target.read_bytes() == b"whole"


def test_submit_waits_while_the_queue_is_full():
    writer = DumpWriter(max_pending_bytes=100)
    release = threading.Event()
    done: list[str] = []
    writer.submit(lambda: (release.wait(), done.append("first")), nbytes=80)
    second = threading.Thread(target=writer.submit, args=(lambda: done.append("second"), 80))
    second.start()
    second.join(timeout=0.3)
    assert second.is_alive(), "a submit over the byte bound must wait"
    release.set()
    second.join(timeout=10)
    assert not second.is_alive()
    writer.close()
    assert done == ["first", "second"]


def test_one_job_larger_than_the_bound_still_runs():
    writer = DumpWriter(max_pending_bytes=10)
    done: list[int] = []
    writer.submit(lambda: done.append(1), nbytes=1000)
    writer.close()
    assert done == [1]


def test_write_errors_are_raised_at_remove(tmp_path, model, prompt, monkeypatch):
    original = writer_module.save_tensor_atomic

    def failing(path: str, tensor: torch.Tensor) -> None:
        if "lm_head" in path:
            raise OSError(f"cannot write {path}")
        original(path, tensor)

    monkeypatch.setattr(writer_module, "save_tensor_atomic", failing)
    handle = register_hook(model, DumpConfig(dump_path=tmp_path))
    with torch.no_grad():
        model(prompt)
    with pytest.raises(DumpWriteError, match=r"2 dump write\(s\) failed") as caught:
        handle.remove()
    # lm_head's output is not saved, so the root's output (the same tensor, a hard link to it) is missing too
    saved, linked = caught.value.errors
    assert str(saved) == f"cannot write {handle.dump_dir / '0' / 'root.lm_head' / 'output.pth'}"
    assert isinstance(linked, FileNotFoundError)
    assert names(handle.dump_dir / "0" / "root") == {"input_0.pth"}
    assert names(handle.dump_dir / "0" / "root.lm_head") == {"input_0.pth"}
    assert hidden_files(tmp_path) == []


def test_write_errors_do_not_hide_the_exception_of_a_with_block(tmp_path, model, prompt, monkeypatch):
    monkeypatch.setattr(writer_module, "save_tensor_atomic", lambda path, tensor: 1 / 0)
    with (
        pytest.raises(KeyError),
        pytest.warns(UserWarning, match="dump write"),
        register_hook(model, DumpConfig(dump_path=tmp_path)),
        torch.no_grad(),
    ):
        model(prompt)
        raise KeyError("the user's error")


def test_files_are_flushed_at_exit_without_remove_and_forked_children_do_not_dump(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = [{str(ROOT)!r}, {str(EXAMPLES)!r}]
        import tiny_llm, torch
        from pytest_llmprec import DumpConfig, register_hook
        model = tiny_llm.build_model(seed=0)
        config = DumpConfig(dump_path={str(tmp_path)!r}, token_range=[0, 1, 2, 3], writer_queue_mb=1)
        register_hook(model, config)
        ids = tiny_llm.generate(model, tiny_llm.sample_prompt(length=6), 3)
        child = os.fork()
        if child == 0:
            torch.set_num_threads(1)  # torch's OpenMP pool does not survive a fork
            model(ids)
            sys.exit(0)  # runs the child's atexit handlers: they must not wait for the parent's writer
        assert os.waitpid(child, 0)[1] == 0
        torch.save(ids, {str(tmp_path / "ids.pth")!r})
        print(os.getpid())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split()[-1])
    (dump,) = tmp_path.glob(f"msit_dump_*/torch_tensors/cpu_{pid}")
    assert names(dump) == {"0", "1", "2", "model_tree.json", "execution_order.json"}
    ids = load(tmp_path / "ids.pth")
    model_count = len(list((dump / "0").iterdir()))
    for token in range(3):
        assert len(list((dump / str(token)).iterdir())) == model_count
        assert torch.equal(load(dump / str(token) / "root" / "input_0.pth"), ids[:, : 6 + token])
        for file in (dump / str(token)).rglob("*.pth"):
            load(file)
    assert hidden_files(tmp_path) == []
    assert os.path.getsize(dump / "execution_order.json") > 0


def test_a_failure_while_capturing_does_not_break_the_forward(tmp_path, model, prompt, monkeypatch):
    from pytest_llmprec.capture import dumper as dumper_module

    def no_memory(tensors):
        raise MemoryError("no host memory")

    monkeypatch.setattr(dumper_module, "host_copies", no_memory)
    handle = register_hook(model, DumpConfig(dump_path=tmp_path, layer_name="root"))
    with torch.no_grad():
        logits = model(prompt)
    assert logits.shape == (1, 6, 256)
    with pytest.raises(DumpWriteError, match=r"2 dump write\(s\) failed") as caught:
        handle.remove()
    assert [str(error) for error in caught.value.errors] == [
        "token 0, root: MemoryError('no host memory')",
        "token 0, root: MemoryError('no host memory')",
    ]
