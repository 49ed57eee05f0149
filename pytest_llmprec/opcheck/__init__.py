"""Operator prechecks: is one operator right, given exactly the inputs it received?

``reference(op_type, inputs, params)`` recomputes an operator's outputs with reference maths;
``register_op`` adds users' operators; ``op_types()`` lists the known ones. ``find_cases(dump)``
finds the operator calls of a dump (ATB, torch, FX), ``check_case`` judges one against its
reference, ``case_reference`` computes the reference of a case from given inputs. Names are
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "INPUT_DTYPES": "registry",
    "NotCheckable": "registry",
    "OpSpec": "registry",
    "OpcheckError": "registry",
    "is_known": "registry",
    "op_types": "registry",
    "reference": "registry",
    "register_op": "registry",
    "register_resolver": "registry",
    "spec": "registry",
    "CaseIndex": "cases",
    "OpCase": "cases",
    "find_cases": "cases",
    "load_inputs": "cases",
    "load_outputs": "cases",
    "load_weights": "cases",
    "CaseResult": "check",
    "OutputCheck": "check",
    "case_reference": "check",
    "check_case": "check",
    "deciding_standard": "check",
    "msit_standard": "standard",
    "opcheck_standard": "standard",
    "OpcheckPlan": "run",
    "check_cases": "run",
    "plan_opcheck": "run",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .cases import CaseIndex, OpCase, find_cases, load_inputs, load_outputs, load_weights
    from .check import CaseResult, OutputCheck, case_reference, check_case, deciding_standard
    from .registry import (
        INPUT_DTYPES,
        NotCheckable,
        OpcheckError,
        OpSpec,
        is_known,
        op_types,
        reference,
        register_op,
        register_resolver,
        spec,
    )
    from .run import OpcheckPlan, check_cases, plan_opcheck
    from .standard import msit_standard, opcheck_standard

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
