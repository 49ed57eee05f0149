"""The operator reference registry: ``reference(op_type, inputs, params)`` and ``register_op``.

A reference computes what one operator should output, given exactly the inputs it received,
with reference maths on the CPU in float64 (float32 or integers only where a higher precision
would not be the operator's meaning, e.g. integer or quantised paths). Operator sets register
their references here: ATB operators (``atb``), torch modules by class name (``torch_modules``),
aten ops (``aten``), and users' own operators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import LlmprecError

if TYPE_CHECKING:
    import torch

ReferenceFunction = Callable[..., "Sequence[torch.Tensor]"]
"""``function(inputs, params) -> outputs``: ``inputs`` are float64 CPU copies of the floating inputs
(other dtypes kept as they are), ``params`` the operator's parameters; the outputs are returned in
float64 (or their integer dtype) and cast by ``reference`` to the operator's output dtypes.
Operators registered with ``weights``/``optional_weights`` are called ``function(inputs, params,
weights)``, ``weights`` a dict of float64 CPU copies by name (torch modules' parameters and buffers).
``params`` also holds ``INPUT_DTYPES``: the dtypes the inputs had before widening."""

INPUT_DTYPES = "_input_dtypes"
"""The key under which a reference function finds the original dtypes of its inputs in ``params``."""


class OpcheckError(LlmprecError, ValueError):
    """An operator cannot be checked: unknown type, missing or wrong parameter, wrong inputs."""


class NotCheckable(OpcheckError):
    """The operator call has no reference by its nature (a random op, a feature the reference
    does not model), as opposed to bad inputs or parameters."""


@dataclass(frozen=True)
class OpSpec:
    """A registered operator: its reference, the parameters it needs, its in-place output indices,
    and the number of inputs it takes (``None``: any number)."""

    op_type: str
    function: ReferenceFunction
    required_params: tuple[str, ...] = ()
    inplace_outputs: tuple[int, ...] = ()
    inputs: tuple[int, int | None] | None = None
    output_dtype: Callable[[Sequence[Any], Mapping[str, Any]], Sequence[Any]] | None = None
    weights: tuple[str, ...] = ()
    optional_weights: tuple[str, ...] = ()

    @property
    def takes_weights(self) -> bool:
        return bool(self.weights or self.optional_weights)


Resolver = Callable[[str], "OpSpec | None"]
"""Builds the spec of an operator family on demand (e.g. every ``aten.*`` op); None: not its name."""

_REGISTRY: dict[str, OpSpec] = {}
_RESOLVERS: list[Resolver] = []
_LOADED = False


def register_op(
    op_type: str,
    *,
    required_params: Sequence[str] = (),
    inplace_outputs: Sequence[int] = (),
    inputs: int | tuple[int, int | None] | None = None,
    output_dtype: Callable[[Sequence[Any], Mapping[str, Any]], Sequence[Any]] | None = None,
    weights: Sequence[str] = (),
    optional_weights: Sequence[str] = (),
) -> Callable[[ReferenceFunction], ReferenceFunction]:
    """Decorator registering ``function(inputs, params) -> outputs`` as the reference of ``op_type``.

    ``inputs``: the exact number of inputs, or ``(least, most)`` with ``most`` None for no limit.
    ``output_dtype(inputs, params)`` gives the dtypes of the outputs (default: every output takes
    the dtype of the first floating input, else of the first floating weight; integer outputs keep
    theirs). ``weights`` (required) and ``optional_weights`` name the tensors the operator holds
    (a module's parameters and buffers); with either, the function is called
    ``function(inputs, params, weights)``. A later registration of the same ``op_type`` replaces
    the earlier one.
    """
    count = (inputs, inputs) if isinstance(inputs, int) else inputs

    def decorate(function: ReferenceFunction) -> ReferenceFunction:
        _REGISTRY[op_type] = OpSpec(
            op_type,
            function,
            tuple(required_params),
            tuple(inplace_outputs),
            count,
            output_dtype,
            tuple(weights),
            tuple(optional_weights),
        )
        return function

    return decorate


def register_resolver(resolver: Resolver) -> Resolver:
    """Add a function that builds the spec of operator names not registered one by one."""
    _RESOLVERS.append(resolver)
    return resolver


def _load_builtin() -> None:
    """Import the built-in operator sets (each registers its operators on import)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import atb, aten, torch_modules  # noqa: F401


def op_types() -> list[str]:
    """Every known operator type, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def spec(op_type: str) -> OpSpec:
    """The registration of ``op_type``; ``OpcheckError`` naming close matches when it is unknown."""
    _load_builtin()
    found = _REGISTRY.get(op_type)
    if found is None:
        found = next((spec for spec in map(_call_resolver(op_type), _RESOLVERS) if spec is not None), None)
    if found is None:
        import difflib

        close = difflib.get_close_matches(op_type, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see pytest_llmprec.opcheck.op_types()"
        raise OpcheckError(f"unknown operator {op_type!r}{hint}")
    return found


def _call_resolver(op_type: str) -> Callable[[Resolver], OpSpec | None]:
    return lambda resolver: resolver(op_type)


def is_known(op_type: str) -> bool:
    """Whether ``op_type`` has a reference (registered, or built by a resolver)."""
    try:
        spec(op_type)
    except OpcheckError:
        return False
    return True


def reference(
    op_type: str,
    inputs: Sequence[torch.Tensor],
    params: Mapping[str, Any] | None = None,
    *,
    weights: Mapping[str, torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
) -> list[torch.Tensor]:
    """The reference outputs of ``op_type`` on ``inputs`` with ``params`` (and ``weights``, for
    operators that hold tensors, such as torch modules).

    Computed on the CPU; returned in the dtypes the operator produces, or, with
    ``dtype=torch.float64``, unrounded (floating outputs only; integer outputs keep their dtype).
    Raises ``OpcheckError`` naming the operator and what is wrong for an unknown type, a missing
    required parameter or weight, or a wrong number of inputs.
    """
    import torch

    found = spec(op_type)
    params = dict(params or {})
    missing = [name for name in found.required_params if params.get(name) is None]
    if missing:
        raise OpcheckError(f"{op_type}: missing required parameter(s) {', '.join(missing)}")
    weights = dict(weights or {})
    missing = [name for name in found.weights if weights.get(name) is None]
    if missing:
        raise OpcheckError(f"{op_type}: missing weight(s) {', '.join(missing)}")
    if found.inputs is not None:
        least, most = found.inputs
        if len(inputs) < least or (most is not None and len(inputs) > most):
            expected = str(least) if least == most else f"{least} to {most if most is not None else 'any'}"
            raise OpcheckError(f"{op_type}: expected {expected} inputs, got {len(inputs)}")
    originals = list(inputs)
    wide = [_widened(tensor) for tensor in originals]
    known = (*found.weights, *found.optional_weights)
    held = {
        name: _widened(tensor) for name, tensor in weights.items() if name in known and tensor is not None
    }
    call_params = {**params, INPUT_DTYPES: [tensor.dtype for tensor in originals]}
    try:
        if found.takes_weights:
            outputs = list(found.function(wide, call_params, held))
        else:
            outputs = list(found.function(wide, call_params))
    except OpcheckError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        shapes = ", ".join(f"{t.dtype} {list(t.shape)}" for t in originals)
        raise OpcheckError(f"{op_type}: the reference failed on inputs [{shapes}]: {exc}") from exc
    if dtype is not None:
        if dtype != torch.float64:
            raise ValueError("dtype must be None (the operator's dtypes) or torch.float64")
        return [out.to(torch.float64) if out.is_floating_point() else out for out in outputs]
    if found.output_dtype is not None:
        wanted = list(found.output_dtype(originals, params))
        if len(wanted) != len(outputs):
            raise OpcheckError(f"{op_type}: {len(wanted)} output dtypes for {len(outputs)} outputs")
    else:
        tensors = [*originals, *(weights[name] for name in known if weights.get(name) is not None)]
        floating = next((t.dtype for t in tensors if t.is_floating_point()), torch.float64)
        wanted = [floating if out.is_floating_point() else out.dtype for out in outputs]
    return [out.to(want) for out, want in zip(outputs, wanted, strict=True)]


def _widened(tensor: torch.Tensor) -> torch.Tensor:
    import torch

    tensor = tensor.detach().cpu()
    return tensor.to(torch.float64) if tensor.is_floating_point() else tensor
