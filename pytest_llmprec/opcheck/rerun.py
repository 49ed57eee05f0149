"""``-rerun``: re-execute ATB operators on the NPU on their dumped inputs (msit-spec §6.3).

Needs ``torch_npu`` and the ATB operation library: ``$ATB_SPEED_HOME_PATH/lib/libatb_speed_torch.so``
and msit's ``libopchecker.so`` (``$AIT_OPCHECK_LIB_PATH``, or ``libopchecker.so`` beside
``libatb_speed_torch.so``). Imported only when asked for; ``atb_kernels`` raises ``LlmprecError``
saying what is missing. Collective operators are not re-executed (their dumped outputs are used).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import LlmprecError
from .cases import COLLECTIVE_OPS
from .check import Kernel
from .registry import spec


def _library_paths() -> list[str]:
    home = os.environ.get("ATB_SPEED_HOME_PATH")
    if not home:
        raise LlmprecError("-rerun needs ATB: set ATB_SPEED_HOME_PATH (source the ATB speed set_env.sh)")
    speed = os.path.join(home, "lib", "libatb_speed_torch.so")
    checker = os.environ.get("AIT_OPCHECK_LIB_PATH") or os.path.join(home, "lib", "libopchecker.so")
    missing = [path for path in (speed, checker) if not os.path.isfile(path)]
    if missing:
        raise LlmprecError(f"-rerun needs the ATB operation libraries; not found: {', '.join(missing)}")
    return [speed, checker]


def atb_kernels(op_types: Iterable[str], device_id: int = 0) -> tuple[dict[str, Kernel], str]:
    """Kernels re-executing each ATB op type on NPU ``device_id``, and the device to pass them."""
    try:
        import torch
        import torch_npu  # noqa: F401  (registers the npu device)
    except ImportError as exc:
        raise LlmprecError(f"-rerun needs torch_npu (and an NPU): {exc}") from None
    for path in _library_paths():
        torch.classes.load_library(path)
    torch.npu.set_device(device_id)
    kernels = {op: _kernel(op) for op in set(op_types) if op not in COLLECTIVE_OPS}
    return kernels, f"npu:{device_id}"


def _kernel(op_type: str) -> Kernel:
    import torch

    try:
        inplace: Sequence[int] = spec(op_type).inplace_outputs
    except LlmprecError:
        inplace = ()

    def run(inputs: list[Any], params: dict[str, Any], weights: dict[str, Any]) -> list[Any]:
        operation = torch.classes.OperationTorch.OperationTorch(op_type)
        operation.set_param(json.dumps(params))
        outputs = operation.execute(list(inputs))
        if inplace:
            return [inputs[k] for k in inplace]
        return [tensor.cpu() for tensor in outputs]

    return run
