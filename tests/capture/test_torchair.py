"""TorchAir dump configs, tested against a stand-in ``torchair`` module (the real one needs an NPU)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from pytest_llmprec.capture.torchair import MissingDependencyError, get_fx_dump_config, get_ge_dump_config

FAKE_TORCHAIR = textwrap.dedent(
    """
    from types import SimpleNamespace

    class CompilerConfig:
        def __init__(self):
            self.debug = SimpleNamespace(
                graph_dump=SimpleNamespace(type=None, path=None), data_dump=SimpleNamespace(type=None, path=None)
            )
            self.fusion_config = SimpleNamespace(fusion_switch_file=None)
            self.dump_config = SimpleNamespace(
                enable_dump=False, dump_mode="all", dump_path=None, dump_step=None, dump_layer=None
            )
    """
)


@pytest.fixture
def torchair(tmp_path, monkeypatch):
    package = tmp_path / "fake" / "torchair"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_TORCHAIR)
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "torchair", raising=False)
    yield
    sys.modules.pop("torchair", None)


def test_ge_dump_config(tmp_path, torchair):
    switch = tmp_path / "fusion_off.json"
    switch.write_text('{"Switch":{"GraphFusion":{"ALL":"off"},"UBFusion":{"ALL":"off"}}}')
    config = get_ge_dump_config(
        dump_path=tmp_path / "dumps",
        dump_mode="output",
        fusion_switch_file=switch,
        dump_token=[0, 3],
        dump_layer=["Add_2", "Mul_1"],
    )
    path = str(tmp_path / "dumps" / "msit_ge_dump")
    assert (tmp_path / "dumps" / "msit_ge_dump").is_dir()
    assert (config.debug.graph_dump.type, config.debug.graph_dump.path) == ("txt", path)
    assert config.fusion_config.fusion_switch_file == str(switch)
    dump = config.dump_config
    assert (dump.enable_dump, dump.dump_mode, dump.dump_path) == (True, "output", path)
    assert (dump.dump_step, dump.dump_layer) == ("0|3", "Add_2 Mul_1")


def test_ge_dump_config_updates_a_given_config_and_warns_on_old_dumps(tmp_path, torchair):
    import torchair as fake

    (tmp_path / "msit_ge_dump").mkdir()
    (tmp_path / "msit_ge_dump" / "old").write_text("x")
    mine = fake.CompilerConfig()
    with pytest.warns(UserWarning, match="not empty"):
        config = get_ge_dump_config(dump_path=tmp_path, compiler_config=mine)
    assert config is mine
    assert (config.dump_config.dump_mode, config.dump_config.dump_step) == ("all", None)


def test_fx_dump_config(tmp_path, torchair):
    config = get_fx_dump_config(dump_path=tmp_path)
    assert (config.debug.data_dump.type, config.debug.data_dump.path) == (
        "npy",
        str(tmp_path / "msit_fx_dump"),
    )


def test_fx_dump_config_on_a_torchair_without_the_path_option(tmp_path, torchair):
    from types import SimpleNamespace

    import torchair as fake

    old = fake.CompilerConfig()
    old.debug.data_dump = SimpleNamespace(type=None)
    with pytest.warns(UserWarning, match="no 'path' option"):
        config = get_fx_dump_config(dump_path=tmp_path, compiler_config=old)
    assert config.debug.data_dump.type == "npy"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dump_mode": "both"}, "dump_mode must be one of"),
        ({"dump_token": [0, -1]}, "dump_token must be a list of token ids"),
        ({"dump_token": "0|1"}, "dump_token must be a list of token ids"),
        ({"dump_layer": "Add_2"}, "dump_layer must be a list of op names"),
        ({"fusion_switch_file": "/nonexistent/switch.json"}, "is not a file"),
    ],
)
def test_ge_dump_config_validates_arguments(tmp_path, torchair, kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_ge_dump_config(dump_path=tmp_path, **kwargs)


def test_missing_torchair_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchair", None)
    for make in (get_ge_dump_config, get_fx_dump_config):
        with pytest.raises(MissingDependencyError, match="need the 'torchair' package") as caught:
            make(dump_path=tmp_path)
        assert isinstance(caught.value, ImportError)


def test_missing_torch_npu_is_named(tmp_path, monkeypatch):
    package = tmp_path / "fake" / "torchair"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import torch_npu\n")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "torchair", raising=False)
    monkeypatch.setitem(sys.modules, "torch_npu", None)
    with pytest.raises(ImportError, match="need the 'torch_npu' package"):
        get_fx_dump_config(dump_path=tmp_path)
    sys.modules.pop("torchair", None)
