"""`WispyOp`: one `wispy::` op with every part of it in one place, in the shape of iree-turbine's
`CustomOp` (signature, select, eager_execute, generate).

    schema     the torch.library signature, e.g. "(Tensor x, Tensor w_q, ...) -> Tensor"
    fake       the meta implementation: output shapes and dtypes only (what torch.export traces)
    reference  the eager implementation (`eager_execute`): the arithmetic the op stands for
    lowering   how it leaves wispy: a `Decomposition` (ATen ops at export, bit-exact with the
               reference) or a `LoweredByPass` (a pass of the torch phase replaces it)
    select     where a rule decides when the op is emitted (optional)
    test       the pytest node id that checks this op (tests/dialects/test_registry.py
               checks that it exists)

`define` registers the op with torch.library (schema, reference, fake) and returns the record.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch


@dataclass(frozen=True)
class Decomposition:
    """The op becomes ATen ops at export: `fn(options, *op_args)`, where `options` are the
    target-dependent choices of the lowering (`wispy.dialects.quant_lowering.LoweringOptions`)."""
    fn: Callable

    def describe(self) -> str:
        return f"decomposition {self.fn.__module__}.{self.fn.__name__}"


@dataclass(frozen=True)
class LoweredByPass:
    """The op stays one node through the import; the pass `name` (wispy.passes.registry)
    replaces it in the torch phase."""
    name: str

    def describe(self) -> str:
        return f"pass {self.name}"


Lowering = Union[Decomposition, LoweredByPass]


@dataclass(frozen=True)
class WispyOp:
    """One registered `wispy::` op (see the module docstring)."""
    name: str                     # "wispy::qconv1d"
    schema: str                   # the torch.library signature, without the name
    summary: str                  # its semantics in one line (dialects/README.md)
    reference: Callable           # eager_execute
    fake: Callable                # the meta implementation
    lowering: Lowering
    test: str                     # pytest node id: "tests/dialects/test_quant.py::test_..."
    select: Optional[Callable] = None

    @property
    def short_name(self) -> str:
        return self.name.split("::", 1)[1]

    @property
    def overload(self):
        """torch.ops.wispy.<name>.default, what an exported graph's nodes call."""
        return getattr(torch.ops.wispy, self.short_name).default

    def __call__(self, *args, **kwargs):
        return self.overload(*args, **kwargs)


def define(name: str, schema: str, summary: str, reference: Callable, fake: Callable, lowering: Lowering,
           test: str, select: Optional[Callable] = None) -> WispyOp:
    """Registers `name` with torch.library (its `schema`, `reference` as the CPU kernel, `fake`
    as the meta kernel) and returns its record."""
    if not name.startswith("wispy::"):
        raise ValueError(f"wispy ops live in the wispy:: namespace, not {name!r}")
    op = torch.library.custom_op(name, reference, mutates_args=(), schema=schema)
    op.register_fake(fake)
    return WispyOp(name, schema, summary, reference, fake, lowering, test, select)
