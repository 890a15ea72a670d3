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
        """`scan(combine, init, xs, additional)` as a counted loop over xs' first dim.

        Emits `torch.prim.Loop` with trip count `xs.size(0)` and a constant-true
        condition, which torch-mlir lowers to `scf.for`: the host counts the steps and
        never waits on the device for a loop condition. Step i reads `xs[i]`
        (`aten.select.int`) and writes the step outputs with `aten.select_scatter`,
        which IREE updates in place.
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
        carry_types, y_step_types = step_types[:n_carry], step_types[n_carry:]

        init_values = [self._import_argument(loc, a) for a in init]
        xs_values = [self._import_argument(loc, a) for a in xs]
        extra_values = [self._import_argument(loc, a) for a in additional]
        vals = list(node.meta["val"])
        result_types = [self._cc.value_info_to_type(v) for v in vals]
        y_types = result_types[n_carry:]
        int_t, bool_t = self._cc.torch_int_type, self._cc.torch_bool_type
        i64 = IntegerType.get_signless(64)

        def const_int(v):
            return Operation.create("torch.constant.int", results=[int_t],
                                    attributes={"value": IntegerAttr.get(i64, v)}, loc=loc).result

        def const_bool(v):
            return Operation.create("torch.constant.bool", results=[bool_t],
                                    attributes={"value": BoolAttr.get(v)}, loc=loc).result

        zero = const_int(0)
        trips = Operation.create("torch.aten.size.int", results=[int_t], operands=[xs_values[0], zero],
                                 loc=loc).result
        # Output buffers [T, ...]: every row is written by the loop, so no fill is needed.
        none = Operation.create("torch.constant.none", results=[self._cc.torch_none_type], loc=loc).result
        accs = []
        for yv, ty in zip(vals[n_carry:], y_types):
            dims = [trips] + [const_int(int(d)) for d in yv.shape[1:]]
            size = Operation.create("torch.prim.ListConstruct", results=[IrType.parse("!torch.list<int>")],
                                    operands=dims, loc=loc).result
            dtype = const_int(_TORCH_DTYPE_CODE[yv.dtype])
            accs.append(Operation.create("torch.aten.empty.memory_format", results=[ty],
                                         operands=[size, dtype, none, none, none, none], loc=loc).result)
        loop = Operation.create("torch.prim.Loop", results=result_types,
                                operands=[trips, const_bool(True)] + init_values + accs, regions=1, loc=loc)
        with loc:
            block = Block.create_at_start(loop.regions[0], [int_t] + result_types)
        with InsertionPoint(block):
            i = block.arguments[0]
            carries = list(block.arguments[1:1 + n_carry])
            acc_args = list(block.arguments[1 + n_carry:])
            dim0 = const_int(0)
            x_i = [Operation.create("torch.aten.select.int", results=[t], operands=[x, dim0, i], loc=loc).result
                   for x, t in zip(xs_values, x_types)]
            res = list(Operation.create("func.call", attributes={"callee": FlatSymbolRefAttr.get(combine_fn)},
                                        results=carry_types + y_step_types,
                                        operands=carries + x_i + extra_values, loc=loc).results)
            new_accs = [Operation.create("torch.aten.select_scatter", results=[acc.type],
                                         operands=[acc, y, dim0, i], loc=loc).result
                        for acc, y in zip(acc_args, res[n_carry:])]
            Operation.create("torch.prim.Loop.condition", results=[],
                             operands=[const_bool(True)] + res[:n_carry] + new_accs, loc=loc)
        self._multi_result_nodes.add(node)
        for k, v in enumerate(loop.results):
            self.bind_node_value(node, v, k)


# torch's ScalarType codes, as torch-mlir's `torch.constant.int` dtype arguments expect.
_TORCH_DTYPE_CODE = {torch.uint8: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.int64: 4,
                     torch.float16: 5, torch.float32: 6, torch.float64: 7, torch.bool: 11, torch.bfloat16: 15}
