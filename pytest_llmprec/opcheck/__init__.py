"""Operator prechecks: is one operator right, given exactly the inputs it received?

``reference(op_type, inputs, params)`` recomputes an operator's outputs with reference maths;
``register_op`` adds users' operators; ``op_types()`` lists the known ones. Names are imported on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "OpSpec": "registry",
    "OpcheckError": "registry",
    "op_types": "registry",
    "reference": "registry",
    "register_op": "registry",
    "spec": "registry",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .registry import OpcheckError, OpSpec, op_types, reference, register_op, spec

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
