"""The analysis: each value's time axis, rate, delay and length, checked layer by layer."""
from __future__ import annotations

import math
import operator
from dataclasses import replace
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.node import Node

from wispy.errors import WispyError
from wispy.compiler.stream.ops import DIM_FUNCTIONS, DIM_METHODS, IDENTITY_LIKE, IDENTITY_LIKE_MODULES, LAYOUT_FUNCTIONS, LAYOUT_METHODS, POINTWISE_FUNCTIONS, POINTWISE_METHODS, POINTWISE_MODULES, REGROUPING, SIZE_ARITHMETIC, SIZE_METHODS, SPLIT_FUNCTIONS, SPLIT_METHODS, dims_of, node_arg
from wispy.compiler.stream.plan import ConvAct, PadAct, RNNAct, SliceAct, StreamPlan
from wispy.compiler.stream.trace import DYNAMIC_SIZE, GlobalValue, Stream, TRACE_LENGTHS, describe, first_output, run_plain, shape_of, stream_error, trace


class Analysis:
    def __init__(self, root: nn.Module, graph: fx.Graph, shapes: tuple[dict, dict], lengths: tuple[int, int],
                 axis: int):
        self.root, self.graph, self.shapes, self.lengths, self.axis = root, graph, shapes, lengths, axis
        self.info: dict[Node, Any] = {}
        self.actions: dict[Node, Any] = {}
        self.delays: dict[tuple, tuple] = {}  # (consumer, producer) -> (state, frames, axis, rate)
        self.state_shapes: list = []
        self.sites: list = []
        self.rates = {1}

    # -- helpers -------------------------------------------------------------------------
    def desc(self, node):
        return describe(self.root, node)

    def shape(self, node, run=0):
        return self.shapes[run][node]

    def add_state(self, shape) -> int:
        self.state_shapes.append(tuple(int(s) for s in shape))
        return len(self.state_shapes) - 1

    def add_site(self, s: Stream) -> int:
        self.sites.append(s)
        return len(self.sites) - 1

    def time_axis_of(self, node) -> Optional[int]:
        a, b = self.shape(node, 0), self.shape(node, 1)
        if not (isinstance(a, tuple) and all(isinstance(d, int) for d in a)):
            return None
        changed = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        if len(a) != len(b) or len(changed) > 1:
            raise stream_error(f"{self.desc(node)} mixes frames across the whole utterance (its output shape "
                       f"{a} changes in several dimensions with the utterance length)")
        return changed[0] if changed else None

    def check_length(self, node, s: Stream):
        """The length model of `s` must give the traced lengths."""
        extra = sum(s.pad)
        for run, total in enumerate(self.lengths):
            got = self.shape(node, run)[s.axis]
            if s.length(total) + extra != got:
                raise stream_error(f"cannot tell how {self.desc(node)} maps frames over time (expected "
                           f"{s.length(total) + extra} frames for a {total}-frame utterance, it gives {got})")

    def streams_in(self, node):
        ins = []
        for n in node.all_input_nodes:
            i = self.info.get(n)
            if isinstance(i, GlobalValue):
                raise stream_error(f"{self.desc(node)} uses a value that needs the whole utterance: {i.reason}")
            if isinstance(i, Stream):
                ins.append((n, i))
            elif isinstance(i, tuple):
                raise stream_error(f"{self.desc(node)} takes a tuple of time series; index it first")
        return ins

    def no_pending_pad(self, node, ins):
        for n, s in ins:
            if s.pad != (0, 0):
                raise stream_error(f"{self.desc(node)} uses a value padded over time ({self.desc(n)}); a zero "
                           "padding over time can only feed a Conv1d or pooling layer")

    def align(self, node, ins) -> int:
        """Delays the earlier inputs so all arrive with the latest delay; returns it."""
        rates = {s.rate for _, s in ins}
        if len(rates) > 1:
            raise stream_error(f"{self.desc(node)} combines values at different frame rates ({sorted(rates)} input "
                       "frames per frame)")
        delay = max(s.delay for _, s in ins)
        for n, s in ins:
            if s.delay < delay:
                shape = list(self.shape(n))
                shape[s.axis] = delay - s.delay
                self.delays[(node, n)] = (self.add_state(shape), delay - s.delay, s.axis, s.rate)
        return delay

    # -- the walk ------------------------------------------------------------------------
    def run(self) -> Stream:
        for node in self.graph.nodes:
            if node.op == "placeholder":
                self.info[node] = Stream(self.axis, 1, 0, lambda T: T, clean=True)
                continue
            if node.op == "output":
                return self.output(node)
            self.info[node] = self.visit(node)
        raise AssertionError("graph without output")

    def output(self, node) -> Stream:
        out = first_output(node)
        i = self.info.get(out) if isinstance(out, Node) else None
        if isinstance(i, tuple):  # a layer's (output, state) returned as is
            i = i[0]
        if isinstance(i, GlobalValue):
            raise stream_error(f"the model's output needs the whole utterance: {i.reason}")
        if not isinstance(i, Stream):
            raise stream_error("the model's output does not have a time axis that follows its input's")
        if i.pad != (0, 0):
            raise stream_error("the model's output is padded over time")
        return i

    def visit(self, node):
        if node.op == "get_attr":
            return None
        ins_all = [self.info.get(n) for n in node.all_input_nodes]
        if node.op == "call_method" and node.target in SIZE_METHODS or \
                node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
            return DYNAMIC_SIZE if any(isinstance(i, Stream) for i in ins_all) else None
        if all(i is None for i in ins_all):
            return None  # no time in or out: constants, weights
        if node.op == "call_function" and node.target is operator.getitem:
            return self.getitem(node)
        if any(i == DYNAMIC_SIZE for i in ins_all):  # a value computed from a number of frames
            if all(i in (None, DYNAMIC_SIZE) for i in ins_all) and node.op == "call_function" and \
                    node.target in SIZE_ARITHMETIC:
                return DYNAMIC_SIZE  # still a size (e.g. T // 2)
            if not self.is_layout(node):  # sizes are fine in a view's shape, not as values
                raise stream_error(f"{self.desc(node)} computes with the number of frames, which is a chunk's "
                           "(not the utterance's) when streaming")
        ins = self.streams_in(node)
        if node.op == "call_module":
            return self.module(node, self.root.get_submodule(node.target), ins)
        key = node.target
        if node.op == "call_function" and key in (F.conv1d, torch.conv1d):
            return self.conv(node, ins, None)
        if key in (F.max_pool1d, F.avg_pool1d, F.pad) and node.op == "call_function":
            return self.function_window(node, ins)
        return self.generic(node, ins)

    def is_layout(self, node):
        return (node.op == "call_method" and node.target in LAYOUT_METHODS) or \
            (node.op == "call_function" and node.target in LAYOUT_FUNCTIONS)

    def out_stream(self, node, s: Stream, *, clean=False, delay=None) -> Stream:
        axis = self.time_axis_of(node)
        if axis is None:
            return None
        o = Stream(axis, s.rate, s.delay if delay is None else delay, s.length, clean=clean)
        self.check_length(node, o)
        return o

    def generic(self, node, ins):
        op, key = node.op, node.target
        self.no_pending_pad(node, ins)
        if not ins:
            return None
        first_rank = len(self.shape(ins[0][0]))
        t_first = ins[0][1].axis
        if (op == "call_function" and key in POINTWISE_FUNCTIONS) or \
                (op == "call_method" and key in POINTWISE_METHODS):
            return self.pointwise(node, ins, clean=key in IDENTITY_LIKE and len(ins) == 1)
        if self.is_layout(node):
            s = ins[0][1]
            if len(ins) > 1:
                raise stream_error(f"{self.desc(node)} takes its shape from another time series")
            out = self.out_stream(node, s, clean=s.clean)
            if out is None:
                raise stream_error(f"{self.desc(node)} merges the time axis with another one")
            for run in (0, 1):
                if self.shape(node, run)[out.axis] != self.shape(ins[0][0], run)[s.axis]:
                    raise stream_error(f"{self.desc(node)} merges or splits the time axis")
            if key in REGROUPING:  # frames stay whole only if the dims before time are the same
                a_in, a_out = self.shape(ins[0][0]), self.shape(node)
                if math.prod(a_in[:s.axis]) != math.prod(a_out[:out.axis]):
                    raise stream_error(f"{self.desc(node)} regroups the time axis with others")
            return out
        spec = (DIM_FUNCTIONS.get(key) if op == "call_function" else
                DIM_METHODS.get(key) if op == "call_method" else None)
        if spec is not None:
            pos, default = spec
            name = "dim"
            d = node_arg(node, pos, name, default)
            if isinstance(d, Node):
                raise stream_error(f"{self.desc(node)} has a computed dim")
            if d == "required":
                raise stream_error(f"{self.desc(node)} has no dim (implicit dims are not streamed)")
            dims = dims_of(d, first_rank)
            if dims is None or t_first in dims:
                return GlobalValue(f"{self.desc(node)} works over the time axis")
            return self.pointwise(node, ins)
        if op == "call_function" and key is F.layer_norm:
            ns = node_arg(node, 1, "normalized_shape")
            n = len(ns) if isinstance(ns, (list, tuple)) else 1
            if t_first >= first_rank - n:
                return GlobalValue(f"{self.desc(node)} normalises over the time axis")
            return self.pointwise(node, ins)
        if (op == "call_function" and key in (F.linear, torch.matmul, operator.matmul)):
            if len(ins) > 1 or ins[0][0] is not node.args[0]:
                raise stream_error(f"{self.desc(node)} multiplies by a time series (mixes frames)")
            if t_first == first_rank - 1:
                return GlobalValue(f"{self.desc(node)} multiplies over the time axis")
            return self.pointwise(node, ins)
        if op == "call_function" and key in (torch.cat, torch.concat, torch.stack):
            d = node_arg(node, 1, "dim", 0)
            if key is not torch.stack and d % first_rank == t_first:
                raise stream_error(f"{self.desc(node)} concatenates over time")
            return self.pointwise(node, ins, broadcast=False)
        split = (SPLIT_FUNCTIONS.get(key) if op == "call_function" else
                 SPLIT_METHODS.get(key) if op == "call_method" else None)
        if split is not None:
            d = node_arg(node, *split[:1], "dim", split[1])
            if d % first_rank == t_first:
                raise stream_error(f"{self.desc(node)} splits over time")
            s = ins[0][1]
            return tuple(Stream(t_first if key not in (torch.unbind, "unbind") or d % first_rank > t_first
                                else t_first - 1, s.rate, s.delay, s.length) for _ in self.shape(node))
        what = f"{op} {getattr(key, '__name__', key)}"
        raise stream_error(f"cannot tell whether {self.desc(node)} works frame by frame ({what} is not among the "
                   "operations wispy streams)")

    def pointwise(self, node, ins, *, clean=False, broadcast=True) -> Stream:
        self.no_pending_pad(node, ins)
        delay = self.align(node, ins)
        axis = self.time_axis_of(node)
        if axis is None:
            return GlobalValue(f"{self.desc(node)} leaves no time axis")
        out_rank = len(self.shape(node))
        for n, s in ins:
            expect = s.axis + (out_rank - len(self.shape(n))) if broadcast else None
            if broadcast and expect != axis:
                raise stream_error(f"{self.desc(node)} combines {self.desc(n)}'s time axis {s.axis} with another axis")
        s0 = ins[0][1]
        out = Stream(axis, s0.rate, delay, s0.length, clean=clean and all(s.clean for _, s in ins))
        self.check_length(node, out)
        return out

    def getitem(self, node):
        src, index = node.args
        i = self.info.get(src)
        if isinstance(i, GlobalValue):
            raise stream_error(f"{self.desc(node)} uses a value that needs the whole utterance: {i.reason}")
        if isinstance(i, tuple):  # an element of a layer's tuple output
            e = i[index]
            if isinstance(e, Stream):
                self.check_length(node, e)
            return e
        if i == DYNAMIC_SIZE:
            return DYNAMIC_SIZE
        if not isinstance(i, Stream):
            return None
        self.no_pending_pad(node, [(src, i)])
        rank = len(self.shape(src))
        idx = index if isinstance(index, tuple) else (index,)
        if any(isinstance(e, (Node, list, torch.Tensor)) for e in idx) or any(
                isinstance(e, slice) and any(isinstance(v, Node) for v in (e.start, e.stop, e.step)) for e in idx):
            raise stream_error(f"{self.desc(node)} indexes a time series with tensors or computed bounds")
        n_given = sum(1 for e in idx if e is not None and e is not Ellipsis)
        full = []
        for e in idx:
            if e is Ellipsis:
                full.extend([slice(None)] * (rank - n_given))
            else:
                full.append(e)
        if Ellipsis not in idx:
            full.extend([slice(None)] * (rank - n_given))
        dim, t_pos = 0, None
        for k, e in enumerate(full):
            if e is None:
                continue
            if dim == i.axis:
                t_pos = k
            dim += 1
        e = full[t_pos]
        if isinstance(e, int):
            raise stream_error(f"{self.desc(node)} picks one frame")
        start, stop, step = e.start or 0, e.stop, e.step or 1
        if step != 1 or start < 0:
            raise stream_error(f"{self.desc(node)} slices time with a step or from the end (needs the whole utterance)")
        if start == 0 and stop is None:
            return self.out_stream(node, i, clean=i.clean)
        whole = list(full)
        whole[t_pos] = slice(None)
        trail = -stop if stop is not None and stop < 0 else 0
        state = None
        if trail:
            shape = list(self.shape(src))
            shape[i.axis] = trail
            state = self.add_state(shape)
        self.actions[node] = SliceAct(tuple(whole), state, trail)
        length = i.length
        out = Stream(i.axis, i.rate, i.delay + start + trail,
                     lambda T, L=length, a=start, b=stop: len(range(L(T))[a:b]))
        axis = self.time_axis_of(node)
        if axis is None:
            raise stream_error(f"{self.desc(node)} leaves no time axis")
        out = replace(out, axis=axis)
        self.check_length(node, out)
        return out

    def function_window(self, node, ins):
        key = node.target
        if key is F.pad:
            pad = list(node_arg(node, 1, "pad"))
            mode = node_arg(node, 2, "mode", "constant")
            value = node_arg(node, 3, "value", None)
            return self.pad(node, ins, pad, mode, value)
        k = node_arg(node, 1, "kernel_size")
        s = node_arg(node, 2, "stride", None) or k
        p = node_arg(node, 3, "padding", 0)
        if key is F.max_pool1d:
            d = node_arg(node, 4, "dilation", 1)
            ceil = node_arg(node, 5, "ceil_mode", False)
            extra_ok = not node_arg(node, 6, "return_indices", False)
            return self.pool(node, ins, "max", k, s, p, d, ceil, extra_ok)
        ceil = node_arg(node, 4, "ceil_mode", False)
        cip = node_arg(node, 5, "count_include_pad", True)
        return self.pool(node, ins, "avg", k, s, p, 1, ceil, cip or not p)

    def pad(self, node, ins, pad, mode, value):
        s = ins[0][1]
        rank = len(self.shape(ins[0][0]))
        pi = rank - 1 - s.axis
        tl = pad[2 * pi] if 2 * pi < len(pad) else 0
        tr = pad[2 * pi + 1] if 2 * pi + 1 < len(pad) else 0
        if (tl or tr) and (mode != "constant" or value not in (None, 0, 0.0) or tl < 0 or tr < 0):
            raise stream_error(f"{self.desc(node)} pads time with '{mode}' (value {value}); only zero padding is "
                       "streamed")
        self.no_pending_pad(node, ins)
        rest = list(pad)
        if 2 * pi < len(rest):
            rest[2 * pi] = 0
        if 2 * pi + 1 < len(rest):
            rest[2 * pi + 1] = 0
        self.actions[node] = PadAct(tuple(rest) if any(rest) else None)
        axis = self.time_axis_of(node)
        out = Stream(axis, s.rate, s.delay, s.length, clean=s.clean, pad=(tl, tr))
        self.check_length(node, out)
        return out

    def module(self, node, m: nn.Module, ins):
        if isinstance(m, nn.Conv1d):
            return self.conv(node, ins, m)
        if isinstance(m, (nn.MaxPool1d, nn.AvgPool1d)):
            def one(v):
                return v[0] if isinstance(v, tuple) else v
            if isinstance(m, nn.MaxPool1d):
                return self.pool(node, ins, "max", one(m.kernel_size), one(m.stride), one(m.padding),
                                 one(m.dilation), m.ceil_mode, not m.return_indices)
            return self.pool(node, ins, "avg", one(m.kernel_size), one(m.stride), one(m.padding), 1,
                             m.ceil_mode, m.count_include_pad or not one(m.padding))
        if isinstance(m, (nn.ConstantPad1d, nn.ZeroPad1d)):
            return self.pad(node, ins, list(m.padding), "constant", m.value)
        if isinstance(m, (nn.GRU, nn.LSTM, nn.RNNBase)):
            return self.rnn(node, m, ins)
        self.no_pending_pad(node, ins)
        if len(ins) != 1 or ins[0][0] is not node.args[0]:
            raise stream_error(f"{self.desc(node)} takes a time series as an extra argument")
        n, s = ins[0]
        rank = len(self.shape(n))
        if isinstance(m, POINTWISE_MODULES):
            return self.pointwise(node, ins, clean=isinstance(m, IDENTITY_LIKE_MODULES))
        if isinstance(m, nn.PReLU):
            if m.num_parameters > 1 and rank > 1 and s.axis == 1:
                return GlobalValue(f"{self.desc(node)} has a weight per channel on the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, (nn.BatchNorm1d,)):
            if m.training or not m.track_running_stats or m.running_mean is None:
                return GlobalValue(f"{self.desc(node)} normalises with the statistics of the utterance "
                               "(training mode or no running statistics)")
            if s.axis == 1:
                return GlobalValue(f"{self.desc(node)} normalises channels on the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, (nn.InstanceNorm1d, nn.GroupNorm)):
            return GlobalValue(f"{self.desc(node)} normalises over the time axis")
        if isinstance(m, nn.LayerNorm):
            if s.axis >= rank - len(m.normalized_shape):
                return GlobalValue(f"{self.desc(node)} normalises over the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, nn.Linear):
            if s.axis == rank - 1:
                return GlobalValue(f"{self.desc(node)} multiplies over the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax, nn.GLU)):
            if m.dim is None:
                raise stream_error(f"{self.desc(node)} has no dim (implicit dims are not streamed)")
            if m.dim % rank == s.axis:
                return GlobalValue(f"{self.desc(node)} works over the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, (nn.Flatten, nn.Unflatten)):
            out = self.out_stream(node, s, clean=s.clean)
            if out is None or any(self.shape(node, r)[out.axis] != self.shape(n, r)[s.axis] for r in (0, 1)) \
                    or math.prod(self.shape(n)[:s.axis]) != math.prod(self.shape(node)[:out.axis]):
                raise stream_error(f"{self.desc(node)} merges the time axis with another one")
            return out
        raise stream_error(f"cannot tell whether {self.desc(node)} works frame by frame ({type(m).__name__} is not "
                   "among the layers wispy streams)")

    # -- layers over time ----------------------------------------------------------------
    def window(self, node, x_node, s: Stream, *, kind, k, stride, dilation, pl, pr, groups=1,
               weight_from_args=False):
        """A sliding window over time (convolution or pooling): the cache and the delay."""
        rank = len(self.shape(x_node))
        if rank != 3 or s.axis != 2:
            raise stream_error(f"{self.desc(node)} slides over axis {rank - 1} of its input, but time is axis "
                       f"{s.axis} there: it mixes frames (give the model [batch, channels, time] there)")
        pl, pr = pl + s.pad[0], pr + s.pad[1]
        e = dilation * (k - 1) + 1
        if kind == "conv" and e == 1 and stride == 1 and pl == pr == 0:
            out = self.out_stream(node, s)
            return out  # a 1x1 convolution works frame by frame
        d_in = s.delay
        cache = e - stride + ((pl - d_in - (e - stride)) % stride)
        d_out = (cache + d_in - pl) // stride
        if d_out < 0:  # more padding than the window: delay the input so no output is skipped
            extra = -d_out * stride
            shape = list(self.shape(x_node))
            shape[2] = extra
            self.delays[(node, x_node)] = (self.add_state(shape), extra, 2, s.rate)
            d_in += extra
            d_out = 0
        site = None
        if not s.clean and (pl or pr):
            site = self.add_site(Stream(2, s.rate, d_in, s.length))
        state = None
        if cache > 0:
            shape = list(self.shape(x_node))
            shape[2] = cache
            state = self.add_state(shape)
        self.actions[node] = ConvAct(kind, cache, state, site, stride, dilation, groups, k, weight_from_args)
        self.rates.add(s.rate * stride)
        length = s.length
        out = Stream(2, s.rate * stride, d_out,
                     lambda T, L=length, a=pl, b=pr, e=e, st=stride: (L(T) + a + b - e) // st + 1)
        self.check_length(node, out)
        return out

    def conv(self, node, ins, m: Optional[nn.Conv1d]):
        x_node = node.args[0]
        if len(ins) != 1 or ins[0][0] is not x_node:
            raise stream_error(f"{self.desc(node)} takes its weights from a time series")
        s = ins[0][1]
        if m is not None:
            if m.padding_mode != "zeros" and any(m.padding if not isinstance(m.padding, str) else (1,)):
                raise stream_error(f"{self.desc(node)} pads with '{m.padding_mode}'; only zero padding is streamed")
            k, stride, dil, groups, pad = m.kernel_size[0], m.stride[0], m.dilation[0], m.groups, m.padding
        else:
            k = self.shape(node.args[1])[-1]
            stride, pad = node_arg(node, 3, "stride", 1), node_arg(node, 4, "padding", 0)
            dil, groups = node_arg(node, 5, "dilation", 1), node_arg(node, 6, "groups", 1)
            stride, dil = (v[0] if isinstance(v, (tuple, list)) else v for v in (stride, dil))
        e = dil * (k - 1) + 1
        if pad == "valid":
            pl = pr = 0
        elif pad == "same":
            pl = (e - 1) // 2
            pr = e - 1 - pl
        else:
            pl = pr = pad[0] if isinstance(pad, (tuple, list)) else pad
        return self.window(node, x_node, s, kind="conv", k=k, stride=stride, dilation=dil, pl=pl, pr=pr,
                           groups=groups, weight_from_args=m is None)

    def pool(self, node, ins, kind, k, stride, pad, dilation, ceil_mode, supported):
        x_node = node.args[0]
        if ceil_mode or not supported or (kind == "max" and (pad or dilation != 1)):
            raise stream_error(f"{self.desc(node)}: pooling over time is streamed without ceil_mode, "
                       "without padding or dilation (max) or with count_include_pad (average), and without "
                       "indices")
        return self.window(node, x_node, ins[0][1], kind=kind, k=k, stride=stride or k, dilation=dilation,
                           pl=pad, pr=pad)

    def rnn(self, node, m: nn.RNNBase, ins):
        if not isinstance(m, (nn.GRU, nn.LSTM)):
            raise stream_error(f"{self.desc(node)}: only nn.GRU and nn.LSTM are streamed")
        if m.bidirectional:
            raise stream_error(f"{self.desc(node)} is bidirectional and needs the whole utterance")
        if len(node.args) > 1 or node.kwargs:
            raise stream_error(f"{self.desc(node)} is given an initial state; streaming carries the state itself")
        self.no_pending_pad(node, ins)
        x_node, s = ins[0]
        rank = len(self.shape(x_node))
        want = 1 if m.batch_first else 0
        if rank != 3 or s.axis != want:
            raise stream_error(f"{self.desc(node)} runs over axis {want} of a 3-D input, but time is axis {s.axis} "
                       f"there{'' if m.batch_first else ' (say time_axis=0 for [time, batch, feats] input)'}")
        batch = self.shape(x_node)[1 - want]
        h = m.proj_size if getattr(m, "proj_size", 0) else m.hidden_size
        states = [self.add_state((m.num_layers, batch, h))]
        if isinstance(m, nn.LSTM):
            states.append(self.add_state((m.num_layers, batch, m.hidden_size)))
        site = self.add_site(Stream(s.axis, s.rate, s.delay, s.length)) if s.delay > 0 else None
        self.actions[node] = RNNAct(states, site)
        out = Stream(s.axis, s.rate, s.delay, s.length)
        return (out, GlobalValue(f"{self.desc(node)}'s final state is known only at the end of the utterance"))


def analyse(model: nn.Module, example_chunk: torch.Tensor, time_axis: Optional[int]):
    """Traces `model` and plans its step function. Returns (root, graph, analysis, plan)."""
    root, graph = trace(model)
    rank = example_chunk.dim()
    if rank < 2:
        raise stream_error(f"the example chunk must have a batch and a time axis, got shape {tuple(example_chunk.shape)}")
    candidates = [time_axis % rank] if time_axis is not None else [a for a in range(1, rank)]
    results, errors = [], []
    for axis in candidates:
        for lengths in TRACE_LENGTHS:
            shapes = []
            try:
                with torch.no_grad():
                    for total in lengths:
                        shape = list(example_chunk.shape)
                        shape[axis] = total
                        x = torch.randn(shape, dtype=example_chunk.dtype)
                        shapes.append({n: shape_of(v) for n, v in run_plain(root, graph, x).items()})
                break
            except Exception as e:  # noqa: BLE001  (the model does not take time on this axis)
                failure = e
        else:
            errors.append((axis, False, failure))
            continue
        try:
            a = Analysis(root, graph, tuple(shapes), lengths, axis)
            out = a.run()
            results.append((axis, a, out))
        except WispyError as e:
            errors.append((axis, True, e))
    if len(results) > 1:
        raise stream_error(f"the model runs with time on axis {results[0][0]} or {results[1][0]} of its input; "
                   "say which with time_axis=")
    if not results:
        ran = [e for e in errors if e[1]]
        if len(ran) == 1 or (ran and time_axis is not None):
            raise ran[0][2]
        if ran:
            raise stream_error("; ".join(f"with time on axis {ax}: {str(e).removeprefix('streaming: ')}"
                                 for ax, _, e in ran) + " (say which axis is time with time_axis=)")
        _, _, e = errors[0]
        raise stream_error(f"the model does not run on {rank}-D input with a varying axis "
                   f"{' or '.join(str(c) for c in candidates)} ({type(e).__name__}: {str(e)[:200]})") from e
    axis, a, out = results[0]
    multiple = math.lcm(*a.rates)
    plan = StreamPlan(axis, multiple, out, a.state_shapes, a.sites)
    return root, graph, a, plan
