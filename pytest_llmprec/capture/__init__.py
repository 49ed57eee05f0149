"""Capture: dump a model's tensors (module hooks, ``llmprec dump --exec``), manual and logits dumps,
graph-mode dumps (``fx_dump_backend``; torchair configs in ``pytest_llmprec.capture.torchair``).

Names are imported on first use, so that the ``llmprec`` command line does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "DumpConfig": "config",
    "parse_token_range": "config",
    "DumpHandle": "hooks",
    "register_hook": "hooks",
    "DumpWriteError": "writer",
    "dump_data": "manual",
    "seed_all": "seed",
    "LogitsDumper": "logits",
    "bad_case_list": "logits",
    "fx_dump_backend": "fx_dump",
    "golden_decode_inputs": "teacher",
}

__all__ = [
    "DumpConfig",
    "DumpHandle",
    "DumpWriteError",
    "LogitsDumper",
    "bad_case_list",
    "dump_data",
    "fx_dump_backend",
    "golden_decode_inputs",
    "parse_token_range",
    "register_hook",
    "seed_all",
]

if TYPE_CHECKING:
    from .config import DumpConfig, parse_token_range
    from .fx_dump import fx_dump_backend
    from .hooks import DumpHandle, register_hook
    from .logits import LogitsDumper, bad_case_list
    from .manual import dump_data
    from .seed import seed_all
    from .teacher import golden_decode_inputs
    from .writer import DumpWriteError


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
