"""References of aten ops (FX dumps): any ``aten.*`` op, recomputed by calling it on float64 copies.

Resolved on demand (``aten.mm.default``, ``aten.add.Tensor`` ...): the reference calls the op
itself with the dumped tensors widened to float64 and the recorded non-tensor arguments
(``params["args"]``/``params["kwargs"]`` in ``formats.fx_sidecar`` form). Where a float64 call
would not be the reference:

* random ops (tagged ``nondeterministic_seeded``) and ops whose outputs are uninitialised
  (``empty*``) are not checkable;
* integer and bool tensors stay as they are, so integer ops stay integer;
* floating ``dtype`` arguments become float64 (the rounding to the requested dtype is the error the
  check measures), devices become the CPU, and factory ops without a dtype build float64;
* without recorded arguments (torchair FX dumps), only ops whose schema takes tensors alone are
  recomputed (the dumped inputs in order); others are "not checkable: arguments not recorded".
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import torch

from ..formats.fx_sidecar import UnknownArgument, decode_value
from .registry import NotCheckable, OpcheckError, OpSpec, register_resolver

PREFIX = "aten."
UNINITIALISED = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"})
ARGS, KWARGS, OUTPUT_DTYPES = "args", "kwargs", "output_dtypes"
NOT_RECORDED = "arguments not recorded"

_DEFAULT_DTYPE_LOCK = threading.Lock()


def aten_op(target: str) -> torch._ops.OpOverload | None:
    """The overload named ``aten.{name}.{overload}`` (``.default`` when the overload is left out)."""
    if not target.startswith(PREFIX):
        return None
    parts = target[len(PREFIX) :].split(".")
    if len(parts) == 1:
        parts.append("default")
    if len(parts) != 2 or not all(parts):
        return None
    packet = getattr(torch.ops.aten, parts[0], None)
    overload = getattr(packet, parts[1], None) if packet is not None else None
    return overload if isinstance(overload, torch._ops.OpOverload) else None


def not_checkable_reason(target: str, params: Mapping[str, Any]) -> str | None:
    """Why the op ``target`` cannot be recomputed with ``params``; None when it can."""
    op = aten_op(target)
    if op is None:
        return f"{target} is not an aten op of this torch"
    if torch.Tag.nondeterministic_seeded in op.tags:
        return f"{target} is a random op"
    if op._schema.name.split("::")[-1] in UNINITIALISED:
        return f"{target} returns uninitialised memory"
    if ARGS not in params:
        others = [a.name for a in op._schema.arguments if not _is_plain_tensor(a.type)]
        if others:
            return f"{NOT_RECORDED} ({target} takes {', '.join(others)})"
    return None


def _is_plain_tensor(kind: Any) -> bool:
    return isinstance(kind, torch.TensorType)


def _widen_argument(value: Any) -> Any:
    if isinstance(value, torch.dtype):
        return torch.float64 if value.is_floating_point else value
    if isinstance(value, torch.device):
        return torch.device("cpu")
    if isinstance(value, list):
        return [_widen_argument(item) for item in value]
    if isinstance(value, dict):
        return {key: _widen_argument(item) for key, item in value.items()}
    return value


def _call(
    target: str, inputs: Sequence[torch.Tensor], params: Mapping[str, Any], *, widen: bool = True
) -> list[torch.Tensor]:
    """Call the op on ``inputs`` (copies) with the recorded arguments; ``widen``: floating dtype
    arguments become float64 and devices the CPU."""
    reason = not_checkable_reason(target, params)
    if reason is not None:
        raise NotCheckable(f"not checkable: {reason}")
    op = aten_op(target)
    tensors = [tensor.clone() for tensor in inputs]  # in-place ops must not change the caller's copies
    adapt = _widen_argument if widen else (lambda value: value)
    if ARGS in params:
        try:
            args = adapt(decode_value(list(params[ARGS]), tensors))
            kwargs = adapt(decode_value({"dict": dict(params.get(KWARGS) or {})}, tensors))
        except UnknownArgument as exc:
            raise NotCheckable(f"not checkable: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise OpcheckError(f"{target}: bad recorded arguments: {exc}") from None
    else:
        expected = len(op._schema.arguments)
        if len(tensors) != expected:
            raise OpcheckError(f"{target}: expected {expected} tensor inputs, got {len(tensors)}")
        args, kwargs = tensors, {}
    with _DEFAULT_DTYPE_LOCK:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64 if widen else previous)
        try:
            result = op(*args, **kwargs)
        finally:
            torch.set_default_dtype(previous)
    from torch.utils._pytree import tree_leaves

    return [leaf for leaf in tree_leaves(result) if isinstance(leaf, torch.Tensor)]


def _output_dtypes(target: str):
    def output_dtypes(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[Any]:
        recorded = params.get(OUTPUT_DTYPES)
        if recorded:
            return [_dtype(name) for name in recorded]
        meta = [tensor.to("meta") for tensor in inputs]
        try:
            return [tensor.dtype for tensor in _call(target, meta, params, widen=False)]
        except (RuntimeError, NotImplementedError) as exc:
            raise OpcheckError(f"{target}: output dtypes not recorded and not derivable: {exc}") from None

    return output_dtypes


def _dtype(name: str) -> torch.dtype:
    found = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(found, torch.dtype):
        raise OpcheckError(f"unknown dtype {name!r}")
    return found


@cache
def _spec(target: str) -> OpSpec | None:
    if aten_op(target) is None:
        return None

    def function(inputs: Sequence[torch.Tensor], params: Mapping[str, Any]) -> list[torch.Tensor]:
        return _call(target, inputs, params)

    return OpSpec(target, function, output_dtype=_output_dtypes(target))


@register_resolver
def resolve(op_type: str) -> OpSpec | None:
    """The spec of an ``aten.*`` op type, built on first use."""
    return _spec(op_type) if op_type.startswith(PREFIX) else None
