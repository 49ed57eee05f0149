"""References of the ATB (Ascend Transformer Boost) inference operators, by ATB operation name.

Importing the package registers every operator with the opcheck registry. The conventions
shared by all of them (details per operator in docs/opcheck.md, section "ATB operators"):

* inputs are in ATB's order for the given parameters (``before/intensor{k}.bin`` order), params
  are the ``op_param.json`` object; absent params take ATB's defaults;
* in-place operators (KvCache, ReshapeAndCache, SetValue) return the new values of the inputs
  they write, in the order of their ``inplace_outputs``;
* collective operators (AllGather, AllReduce, Broadcast, LinearParallel) take the inputs of every
  rank ``0 .. rankSize - 1`` concatenated in rank order (rank 0's inputs first), and return the
  outputs of rank ``params["rank"]``;
* seeded sampling (Multinomial, TopkToppSampling) reproduces glibc's ``srand``/``rand``.
"""

from __future__ import annotations

from . import attention, caches, collectives, elementwise, linear, norms, sampling, shape_ops, tensor_ops

__all__ = [
    "attention",
    "caches",
    "collectives",
    "elementwise",
    "linear",
    "norms",
    "sampling",
    "shape_ops",
    "tensor_ops",
]
