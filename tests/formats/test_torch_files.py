"""torch.save files: every dtype, legacy format, containers and members, refused pickles."""

from __future__ import annotations

import collections
import os

import pytest
import torch

from pytest_llmprec.dtypes import KERNEL_DTYPES
from pytest_llmprec.errors import DumpFormatError
from pytest_llmprec.formats import list_members, load_tensor, probe_tensor

TORCH_DTYPES = [
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float64,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.float8_e4m3fnuz,
    torch.float8_e5m2fnuz,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.uint16,
    torch.uint32,
    torch.uint64,
    torch.bool,
    torch.complex64,
    torch.complex128,
]


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_round_trip_every_dtype(tmp_path, make_sample, same_bits, dtype):
    tensor = make_sample(dtype, (4, 3))
    path = tmp_path / "t.pt"
    torch.save(tensor, path)
    assert same_bits(load_tensor(path), tensor)
    info = probe_tensor(path)
    assert (info.dtype, info.shape, info.format) == (dtype, (4, 3), None)


def test_zip_checkpoint_is_memory_mapped(tmp_path, mapped_from):
    path = tmp_path / "t.pth"
    torch.save(torch.arange(10_000, dtype=torch.float32), path)
    tensor = load_tensor(path)
    assert tensor[9_999].item() == 9_999.0
    assert mapped_from(tensor, path)


VIEWS = {
    "contiguous": lambda t: t,
    "transposed": lambda t: t.t(),
    "offset slice": lambda t: t.reshape(-1)[3:9],
    "row slice": lambda t: t[1:3],
    "scalar": lambda t: t[0, 0],
    "empty": lambda t: t[:0],
    "strided rows": lambda t: t[::2],
}


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_a_bare_tensor_loads_as_torch_load_gives_it(
    tmp_path, make_sample, same_bits, mapped_from, dtype, view
):
    # bare dense tensors are mapped from the torch-free reader's layout; the rest go through torch.load
    tensor = VIEWS[view](make_sample(dtype, (4, 3)))
    path = tmp_path / "t.pth"
    torch.save(tensor, path)
    loaded, want = load_tensor(path), torch.load(path, weights_only=True)
    assert same_bits(loaded, want) and loaded.stride() == want.stride()
    if want.numel() and str(dtype) in KERNEL_DTYPES:  # the dtypes the torch-free reader maps
        assert mapped_from(loaded, path)


def test_a_bare_tensor_is_read_without_torchs_unpickler(tmp_path, monkeypatch):
    path = tmp_path / "t.pth"
    torch.save(torch.arange(6.0).reshape(2, 3).t(), path)
    torch.save({"a": torch.ones(2)}, tmp_path / "c.pth")
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load called"))
    assert torch.equal(load_tensor(path), torch.arange(6.0).reshape(2, 3).t())
    with pytest.raises(pytest.fail.Exception, match=r"torch\.load called"):
        load_tensor(tmp_path / "c.pth")  # containers still go through torch.load


def test_a_loaded_tensor_is_a_private_copy_of_the_file(tmp_path):
    path = tmp_path / "t.pth"
    torch.save(torch.arange(10_000, dtype=torch.float32), path)
    before = path.read_bytes()
    tensor = load_tensor(path)
    tensor.add_(1)  # copy-on-write: the file keeps its values
    assert path.read_bytes() == before
    assert load_tensor(path)[0].item() == 0.0 and tensor[0].item() == 1.0


def test_a_tensor_saved_with_requires_grad_loads_as_before(tmp_path):
    path = tmp_path / "t.pth"
    torch.save(torch.ones(5, requires_grad=True), path)
    assert torch.equal(load_tensor(path), torch.ones(5))


def test_legacy_format(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(5)}, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert load_tensor(path).tolist() == [0, 1, 2, 3, 4]
    assert list_members(path) == ["w"]


def test_containers_and_member_paths(tmp_path):
    path = tmp_path / "state.pt"
    state = collections.OrderedDict(
        [
            ("model.layers.0.weight", torch.ones(2, 2)),
            ("a", [torch.zeros(1), (torch.full((2,), 3.0), "note")]),
            ("b", {"c": torch.arange(3)}),
            ("meta", {"step": 10}),
        ]
    )
    torch.save(state, path)
    assert list_members(path) == ["model.layers.0.weight", "a.0", "a.1.0", "b.c"]
    assert load_tensor(path, member="model.layers.0.weight").tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert load_tensor(path, member="a.1.0").tolist() == [3.0, 3.0]
    assert load_tensor(path, member="b.c").tolist() == [0, 1, 2]
    assert probe_tensor(path, member="a.0").shape == (1,)
    with pytest.raises(
        DumpFormatError, match=r"holds 4 tensors; choose a member: model\.layers\.0\.weight, a\.0"
    ):
        load_tensor(path)
    with pytest.raises(DumpFormatError, match=r"member 'a\.1\.1' is a str, not a tensor"):
        load_tensor(path, member="a.1.1")
    with pytest.raises(DumpFormatError, match=r"has no member 'a\.7'"):
        load_tensor(path, member="a.7")


def test_list_and_tuple_top_level(tmp_path):
    path = tmp_path / "outputs.pt"
    torch.save((torch.ones(1), torch.zeros(2)), path)
    assert list_members(path) == ["0", "1"]
    assert load_tensor(path, member="1").tolist() == [0.0, 0.0]


def test_container_with_one_tensor_needs_no_member(tmp_path):
    path = tmp_path / "one.pt"
    torch.save({"logits": torch.arange(4.0), "token": 3}, path)
    assert load_tensor(path).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_bare_tensor_has_no_members(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.ones(2), path)
    assert list_members(path) == []


def test_parameter_loads_as_a_plain_tensor(tmp_path):
    path = tmp_path / "p.pt"
    torch.save(torch.nn.Parameter(torch.ones(2)), path)
    tensor = load_tensor(path)
    assert type(tensor) is torch.Tensor
    assert not tensor.requires_grad


def test_non_tensor_content_is_named(tmp_path):
    path = tmp_path / "config.pt"
    torch.save({"name": "llama", "layers": "32"}, path)
    with pytest.raises(
        DumpFormatError, match="holds no tensor \\(found a dict with keys 'name', 'layers'\\)"
    ):
        load_tensor(path)


class _CreatesMarker:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, legacy):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save(
        {"w": torch.ones(1), "x": _CreatesMarker(str(marker))},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    with pytest.raises(DumpFormatError) as info:
        load_tensor(path)
    message = str(info.value)
    assert "evil.pt" in message
    assert "refused" in message
    assert "execute code" in message
    assert "weights_only=True" in message
    assert "mkdir" in message  # torch's reason names the blocked global
    assert not marker.exists()
