"""Start-up hook of ``llmprec dump --exec``, copied as ``sitecustomize.py`` into a temporary folder
that is first on ``PYTHONPATH``.

It runs the ``sitecustomize`` it shadows (if any), then waits for the program to import torch
and installs pytest_llmprec's global module hooks at that moment; the program itself is not
changed and does not import pytest_llmprec. ``$LLMPREC_STARTUP`` says which hooks (``dump``:
``llmprec dump``, ``errcheck``: ``llmprec errcheck``); their configuration comes from the
environment too.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_INSTALLERS = {"dump": "pytest_llmprec.capture.startup", "errcheck": "pytest_llmprec.overflow.startup"}


def _run_shadowed_sitecustomize():
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def _install_hooks():
    mode = os.environ.get("LLMPREC_STARTUP", "dump")
    try:
        if importlib.util.find_spec("pytest_llmprec") is None:
            sys.path.append(os.environ["LLMPREC_PACKAGE_PARENT"])
        importlib.import_module(_INSTALLERS[mode]).install_from_environment()
    except Exception as error:
        print(
            f"llmprec {mode}: could not install the {mode} hooks: {type(error).__name__}: {error}",
            file=sys.stderr,
        )


class _AfterTorchImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps torch's loader so that the hooks go in right after torch loads."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                _install_hooks()

            spec.loader.exec_module = exec_module
        return spec


try:
    _run_shadowed_sitecustomize()
finally:
    sys.meta_path.insert(0, _AfterTorchImport())
