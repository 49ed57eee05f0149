"""Functions that run as modules: global forward hooks see them, per-module hooks do not.

The ``kernels`` package (a dependency of transformers 5.x) turns a decorated function such as
transformers' ``apply_rotary_pos_emb`` into an instance of a ``Func`` module created for it, so
that a hub kernel can replace it. Calling the function runs that module, which is not part of the
model's module tree. The global hooks (``llmprec dump --exec``, the overflow monitor) leave such
calls alone, as ``register_hook`` does and as transformers without ``kernels`` does: their work
belongs to the module that called them.
"""

from __future__ import annotations

from torch import nn

_KERNELS_FUNCTION = "_create_func_module.<locals>.Func"
"""The qualified name of the class ``kernels`` makes for each function it wraps."""


def is_function_module(module: nn.Module) -> bool:
    """Whether ``module`` is a function wrapped as a module by ``kernels``."""
    return type(module).__qualname__ == _KERNELS_FUNCTION
