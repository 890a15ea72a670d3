"""A fix for the FX importer's `while_loop`: only the loop state is carried.

`torch._higher_order_ops.while_loop(cond, body, carried, additional)` lifts the tensors
the body closes over (weights, input projections) into `additional`. The importer
vendored in iree-base-compiler 3.13 imports carried and additional alike as loop
carries, yet gives the loop results for `carried` only, which builds an invalid
`torch.prim.Loop`. Here the loop carries `carried`; `additional` values are defined
outside the loop and passed to every call of `cond` and `body` as they are.
"""
from __future__ import annotations

import torch
from iree.compiler.extras.fx_importer import GraphNodeImporter
from iree.compiler.ir import (Block, BoolAttr, FlatSymbolRefAttr, InsertionPoint, IntegerAttr, IntegerType, Operation,
                               Type as IrType)


class LoopGraphNodeImporter(GraphNodeImporter):
    def _import_hop_while_loop(self, loc, node, hop):
        cond_node, body_node, carried, additional = node.args[:4]
        root = node.graph.owning_module
        names = self.fx_importer._graph_module_to_func_name
        cond_fn = names[id(getattr(root, cond_node.target))]
        body_fn = names[id(getattr(root, body_node.target))]

        def imported(args):
            values = []
            for a in args:
                if isinstance(a, tuple):
                    values.extend(self._import_tuple_argument(loc, a, None))
                else:
                    values.append(self._import_argument(loc, a))
            return values

        carry_values = imported(carried)
        extra_values = imported(additional)
        vals = node.meta.get("val")
        vals = list(vals) if isinstance(vals, (list, tuple)) else [vals]
        result_types = [self._cc.value_info_to_type(v) for v in vals]
        bool_tensor = self._cc.get_vtensor_type(torch.Size([]), torch.bool)

        def call(fn, results, operands):
            return Operation.create("func.call", attributes={"callee": FlatSymbolRefAttr.get(fn)},
                                    results=results, operands=operands, loc=loc)

        def to_bool(v):
            return Operation.create("torch.aten.Bool.Tensor", results=[self._cc.torch_bool_type],
                                    operands=[v], loc=loc).result

        first = to_bool(call(cond_fn, [bool_tensor], carry_values + extra_values).result)
        with loc:
            max_trips = Operation.create(
                "torch.constant.int", results=[self._cc.torch_int_type],
                attributes={"value": IntegerAttr.get(IntegerType.get_signless(64), torch.iinfo(torch.int64).max)},
            ).result
        loop = Operation.create("torch.prim.Loop", results=result_types,
                                operands=[max_trips, first] + carry_values, regions=1, loc=loc)
        with loc:
            block = Block.create_at_start(loop.regions[0], [self._cc.torch_int_type] + result_types)
        with InsertionPoint(block):
            state = list(block.arguments[1:])
            new_state = list(call(body_fn, result_types, state + extra_values).results)
            again = to_bool(call(cond_fn, [bool_tensor], new_state + extra_values).result)
            Operation.create("torch.prim.Loop.condition", results=[], operands=[again] + new_state, loc=loc)
        if len(result_types) > 1:
            self._multi_result_nodes.add(node)
        for i, v in enumerate(loop.results):
            if len(result_types) > 1:
                self.bind_node_value(node, v, i)
            else:
                self.bind_node_value(node, v)

    def _import_hop_scan(self, loc, node, hop):
        """`scan(combine, init, xs, additional)` as counted loops over xs' first dim.

        Emits `torch.prim.Loop`s with constant-true conditions, which torch-mlir lowers
        to `scf.for`: the host counts the steps and never waits on the device for a
        loop condition. IREE pays a fixed cost per iteration of a loop carrying
        tensors (buffer allocations, re-encoding the carried state, a copy of the
        output accumulator: docs/design/compiler.md#frames-per-loop-iteration), so the
        main loop runs FRAMES_PER_ITERATION steps per iteration (`combine` called that
        many times, inlined by IREE) and a second loop the `T mod K` steps left. Step i reads
        `xs[i]` (`aten.select.int`) and writes its outputs with `aten.select_scatter`.
        """
        combine_node, init, xs, additional = node.args[:4]
        root = node.graph.owning_module
        combine_gm = getattr(root, combine_node.target)
        combine_fn = self.fx_importer._graph_module_to_func_name[id(combine_gm)]
        placeholders = [n for n in combine_gm.graph.nodes if n.op == "placeholder"]
        out_node = next(n for n in combine_gm.graph.nodes if n.op == "output")
        step_outputs = list(out_node.args[0])
        n_carry, n_xs = len(init), len(xs)
        x_types = [self._cc.node_val_to_type(p) for p in placeholders[n_carry:n_carry + n_xs]]
        step_types = [self._cc.node_val_to_type(o) for o in step_outputs]

        init_values = [self._import_argument(loc, a) for a in init]
        xs_values = [self._import_argument(loc, a) for a in xs]
        extra_values = [self._import_argument(loc, a) for a in additional]
        vals = list(node.meta["val"])
        result_types = [self._cc.value_info_to_type(v) for v in vals]
        int_t, bool_t = self._cc.torch_int_type, self._cc.torch_bool_type
        i64 = IntegerType.get_signless(64)

        def op(name, results, operands=(), attributes=None, regions=0):
            return Operation.create(name, results=results, operands=list(operands),
                                    attributes=attributes or {}, regions=regions, loc=loc)

        def const_int(v):
            return op("torch.constant.int", [int_t], attributes={"value": IntegerAttr.get(i64, v)}).result

        def const_bool(v):
            return op("torch.constant.bool", [bool_t], attributes={"value": BoolAttr.get(v)}).result

        def arith(name, a, b):
            return op(f"torch.aten.{name}.int", [int_t], [a, b]).result

        zero = const_int(0)
        trips = op("torch.aten.size.int", [int_t], [xs_values[0], zero]).result
        # Output buffers [T, ...]: every row is written by the loops, so no fill is needed.
        none = op("torch.constant.none", [self._cc.torch_none_type]).result
        accs = []
        for yv, ty in zip(vals[n_carry:], result_types[n_carry:]):
            dims = [trips] + [const_int(int(d)) for d in yv.shape[1:]]
            size = op("torch.prim.ListConstruct", [IrType.parse("!torch.list<int>")], dims).result
            accs.append(op("torch.aten.empty.memory_format", [ty],
                           [size, const_int(_TORCH_DTYPE_CODE[yv.dtype]), none, none, none, none]).result)

        def counted_loop(count, state, steps, first_index):
            """A loop of `count` iterations doing `steps` scan steps each; step j of
            iteration i handles frame first_index(i) + j."""
            loop = op("torch.prim.Loop", result_types, [count, const_bool(True)] + state, regions=1)
            with loc:
                block = Block.create_at_start(loop.regions[0], [int_t] + result_types)
            with InsertionPoint(block):
                base = first_index(block.arguments[0])
                carries = list(block.arguments[1:1 + n_carry])
                acc_args = list(block.arguments[1 + n_carry:])
                for j in range(steps):
                    idx = base if j == 0 else arith("add", base, const_int(j))
                    x_i = [op("torch.aten.select.int", [t], [x, zero, idx]).result
                           for x, t in zip(xs_values, x_types)]
                    res = list(op("func.call", step_types, carries + x_i + extra_values,
                                  attributes={"callee": FlatSymbolRefAttr.get(combine_fn)}).results)
                    carries = res[:n_carry]
                    acc_args = [op("torch.aten.select_scatter", [acc.type], [acc, y, zero, idx]).result
                                for acc, y in zip(acc_args, res[n_carry:])]
                op("torch.prim.Loop.condition", [], [const_bool(True)] + carries + acc_args)
            return list(loop.results)

        k = FRAMES_PER_ITERATION
        state = init_values + accs
        if k > 1:
            k_val = const_int(k)
            n_main = arith("floordiv", trips, k_val)
            state = counted_loop(n_main, state, k, lambda i: arith("mul", i, k_val))
            done = arith("mul", n_main, k_val)
            state = counted_loop(arith("sub", trips, done), state, 1, lambda i: arith("add", done, i))
        else:
            state = counted_loop(trips, state, 1, lambda i: i)
        self._multi_result_nodes.add(node)
        for i, v in enumerate(state):
            self.bind_node_value(node, v, i)


# Scan steps per loop iteration (see _import_hop_scan): past 16 the time no longer falls,
# and the code per iteration grows with it (docs/design/compiler.md#frames-per-loop-iteration).
FRAMES_PER_ITERATION = 16

# torch's ScalarType codes, as torch-mlir's `torch.constant.int` dtype arguments expect.
_TORCH_DTYPE_CODE = {torch.uint8: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.int64: 4,
                     torch.float16: 5, torch.float32: 6, torch.float64: 7, torch.bool: 11, torch.bfloat16: 15}
