"""wispy-dedupe-hoisted-globals: one copy of each constant IREE hoists, not one per use.

IREE's data tiling encodes a weight once per matmul that uses it, and const-expr
hoisting turns each encoding into its own global. A recurrent model unrolled over T
steps then holds T packed copies of every recurrent matrix (198 copies of a 12.6 MB
matrix for a 2x1024 GRU at T=100): every step streams its own copy from DRAM instead
of hitting the cache, and the module's memory grows with T.

Matches `util.initializer`s whose body computes a value from immutable globals and
constants only and ends in one `util.global.store` to a private global. Two such
initializers that differ only in the global they store to compute the same value:
the second global's loads are redirected to the first, and the second global and its
initializer are erased. Runs at the dispatch-creation boundary (phase `dispatch`).
Declines initializers with more than one store or loads of mutable globals.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from wispy._mlir import ir
from wispy.passes.base import PassContext, WispyPass


@dataclass(frozen=True)
class DedupeHoistedGlobalsPass(WispyPass):
    name = "wispy-dedupe-hoisted-globals"

    def run(self, module: ir.Operation, context: PassContext) -> None:
        body = module.regions[0].blocks[0]
        globals_ = {}
        for op in body.operations:
            op = op.operation
            if op.name == "util.global":
                globals_[ir.StringAttr(op.attributes["sym_name"]).value] = op
        mutable = {n for n, g in globals_.items() if "is_mutable" in g.attributes}

        canonical: dict[str, str] = {}   # body text -> first global storing it
        replaced: dict[str, str] = {}    # duplicate global -> canonical global
        dead = []
        for op in list(body.operations):
            op = op.operation
            if op.name != "util.initializer":
                continue
            target = _single_store_target(op, mutable)
            if target is None or target not in globals_:
                continue
            g = globals_[target]
            if str(g.attributes.get("sym_visibility", "")) != '"private"':
                continue
            key = _body_key(op, target) + "|" + str(g.attributes["type"])
            if key in canonical:
                replaced[target] = canonical[key]
                dead.extend([op, g])
            else:
                canonical[key] = target
        if not replaced:
            return
        for dup, keep in replaced.items():
            ir.SymbolTable.replace_all_symbol_uses(dup, keep, module)
        for op in dead:
            op.erase()
        context.remark(self.name, module.location,
                       f"merged {len(replaced)} duplicate hoisted globals into {len(set(replaced.values()))}")


def _single_store_target(init: ir.Operation, mutable: set[str]):
    stores = []
    ok = True

    def visit(op):
        nonlocal ok
        if op.name == "util.global.store":
            stores.append(ir.FlatSymbolRefAttr(op.attributes["global"]).value)
        elif op.name == "util.global.load":
            if ir.FlatSymbolRefAttr(op.attributes["global"]).value in mutable:
                ok = False
        elif op.name in ("util.call", "func.call", "util.optimization_barrier"):
            ok = False
        return ir.WalkResult.ADVANCE

    init.walk(visit)
    return stores[0] if ok and len(stores) == 1 else None


def _body_key(init: ir.Operation, target: str) -> str:
    text = str(init)
    # SSA names can differ between equal bodies only by what the printer derived from
    # the stored symbol; drop the store target so equal computations compare equal.
    text = text.replace(f"@{target} ", "@<target> ").replace(f"@{target}:", "@<target>:")
    return re.sub(r"loc\([^)]*\)", "", text)
