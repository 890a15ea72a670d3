"""Streaming any model over time: a step function that carries the context each layer needs.

`compile_streaming` (streaming.py) turns a model into a step function
`main(chunk, limits, *states) -> (outputs, *new_states)`. This file builds that function:

1. **Trace.** `torch.fx` traces the model's forward into a graph of layer calls (nn
   modules are leaves) and tensor functions.
2. **Analyse.** The graph runs twice, at two utterance lengths; the one dimension whose
   size changes is the time axis of each value. Every node is then checked and described
   by a `Stream`: its time axis, its *rate* (input frames per frame: the product of the
   strides before it), its *delay* (stream frame `i` holds whole-utterance frame
   `i - delay`) and its whole-utterance length as a function of the input length (checked
   against the two traced lengths).
   - Frame-local operations (activations, eval BatchNorm, per-frame Linear, softmax over
     features, transposes, reshapes that keep time whole, slicing of other axes) pass the
     stream through.
   - A `Conv1d` (and `MaxPool1d`/`AvgPool1d`) over time keeps a cache of its last input
     frames as a state: it convolves `[cache, chunk]` without padding. The cache length
     `C` lies in `[extent - stride, extent - 1]` (so a chunk of `n` frames gives `n / stride`
     outputs) and is picked so that its windows fall where the whole-utterance windows do
     (the stride phase). The initial cache is zeros: the left padding. The output is late
     by the layer's lookahead, `delay_out = (C + delay_in - pad_left) / stride`.
   - `nn.GRU`/`nn.LSTM` carry their state; frames before the utterance starts (a delayed
     input) leave the state unchanged.
   - Where values of different delays meet (residual adds, skip connections,
     concatenations) the earlier one goes through a delay line (a state of `d` frames).
   - A zero `F.pad` over time becomes padding of the convolution it feeds; a slice
     `x[..., a:-b]` over time shifts the delay (and delays `b` frames, since a frame is
     known to lie before the end only `b` frames later).
   - Anything else that touches time (means over time, bidirectional RNNs, attention, a
     final RNN state) is refused, naming the layer.
3. **Masks.** Frames a stream holds before its utterance starts or after it ends are
   garbage (bias, partial windows); the whole-utterance model sees zero padding there.
   Before every padded convolution whose input is not known to be zero there, frames
   outside `[0, length)` are zeroed. Where they are depends on how many frames came
   before and, once the utterance ends, on its length: the session computes them on the
   host and passes them in `limits` (one row `[lo, hi)` per masked value, in chunk-frame
   units).
4. **Flush.** At the end the session feeds zero frames (the right padding) until every
   output frame of the whole utterance has come out, and drops the frames outside
   `[0, length)` of the output stream. The concatenated outputs then equal the
   whole-utterance output.

Chunks given to the step function hold a multiple of the total stride (`frame_multiple`);
the session keeps the remainder of a chunk for the next call.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.node import Node, map_arg

from wispy.errors import WispyError
from wispy.compiler.recurrent import LoopedRNN, gru_step, lstm_step, time_scan

# Host-computed limits are float32 (exact below 2^24) and clamped to this range.
LIMIT_BIG = float(1 << 24)
# Utterance lengths the graph is traced at to find each value's time axis and length (the
# longer pair for models whose receptive field exceeds the first).
TRACE_LENGTHS = ((256, 320), (2048, 2560))


def _err(msg: str) -> WispyError:
    return WispyError(f"streaming: {msg}")


@dataclass(frozen=True)
class Stream:
    """How a value's frames in the stream relate to its whole-utterance frames."""
    axis: int                                  # time axis of the value
    rate: int                                  # model-input frames per frame of this value
    delay: int                                 # stream frame i = whole-utterance frame i - delay
    length: Callable[[int], int] = field(compare=False)  # whole-utterance frames for T input frames
    clean: bool = False                        # frames outside [0, length) are zero
    pad: tuple = (0, 0)                        # zero padding over time pending for a convolution


@dataclass(frozen=True)
class _Global:
    """A value that needs the whole utterance (a mean over time, an RNN's final state)."""
    reason: str


_DYN = "dynamic-size"  # an int read from a time dimension (allowed in shapes only)


# ---------------------------------------------------------------------------------------------
# Tracing and running the graph

class _Tracer(fx.Tracer):
    def __init__(self):
        super().__init__()
        self.record_stack_traces = True


class _Root(nn.Module):
    """Wraps a model that is a single torch.nn layer (fx traces into roots)."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x):
        y = self.m(x)
        return y[0] if isinstance(self.m, nn.RNNBase) else y


def trace(model: nn.Module) -> tuple[nn.Module, fx.Graph]:
    root = model
    if type(model).__module__.startswith("torch.nn") and not isinstance(model, nn.Sequential):
        root = _Root(model)
    try:
        graph = _Tracer().trace(root)
    except Exception as e:
        raise _err(f"torch.fx cannot trace {type(model).__name__}.forward ({type(e).__name__}: "
                   f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); streaming needs a forward "
                   "without Python control flow on tensor values") from e
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise _err(f"{type(model).__name__}.forward takes {len(placeholders)} inputs; streaming feeds one "
                   "(the features)")
    return root, graph


def _fetch_attr(root: nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _call(root: nn.Module, node: Node, args, kwargs):
    if node.op == "call_module":
        return root.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if node.op == "get_attr":
        return _fetch_attr(root, node.target)
    raise AssertionError(node.op)


def _first_output(node: Node):
    out = node.args[0]
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _run_plain(root: nn.Module, graph: fx.Graph, x: torch.Tensor) -> dict:
    env = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            env[node] = x
        elif node.op == "output":
            break
        else:
            args = map_arg(node.args, lambda n: env[n])
            kwargs = map_arg(node.kwargs, lambda n: env[n])
            env[node] = _call(root, node, args, kwargs)
    return env


def _shape_of(v):
    if isinstance(v, torch.Tensor):
        return tuple(v.shape)
    if isinstance(v, (tuple, list)):
        return tuple(_shape_of(e) for e in v)
    if isinstance(v, (int, torch.Size)):
        return v
    return None


# ---------------------------------------------------------------------------------------------
# Describing nodes for error messages

def _where(node: Node) -> str:
    """' at file.py:LINE' of the innermost frame of the user's code that made `node`."""
    loc = ""
    for line in (node.stack_trace or "").splitlines():
        line = line.strip()
        if line.startswith("File ") and "/torch/" not in line:
            try:
                fname = line.split('"')[1].rsplit("/", 1)[-1]
                lineno = line.split("line ")[1].split(",")[0]
                loc = f" at {fname}:{lineno}"
            except IndexError:
                pass
    return loc


def _describe(root: nn.Module, node: Node) -> str:
    if node.op == "call_module":
        m = root.get_submodule(node.target)
        name = node.target[2:] if isinstance(root, _Root) and node.target.startswith("m.") else node.target
        name = "" if name == "m" and isinstance(root, _Root) else name
        return f"layer '{name}' ({m})" if name else f"the model ({m})"
    if node.op == "call_function":
        return f"'{getattr(node.target, '__name__', str(node.target))}'{_where(node)}"
    if node.op == "call_method":
        return f"'.{node.target}()'{_where(node)}"
    return f"'{node.name}'"


# ---------------------------------------------------------------------------------------------
# What operations do to time

_POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU,
                      nn.CELU, nn.SELU, nn.LeakyReLU, nn.Softplus, nn.Softsign, nn.Hardswish,
                      nn.Hardsigmoid, nn.Mish, nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity,
                      nn.Threshold, nn.Tanhshrink, nn.LogSigmoid)
_POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow,
    torch.add, torch.sub, torch.mul, torch.div, torch.true_divide, torch.maximum, torch.minimum,
    torch.where, torch.pow, torch.clamp, torch.clip, torch.relu, torch.sigmoid, torch.tanh, torch.exp,
    torch.log, torch.log1p, torch.expm1, torch.abs, torch.neg, torch.sqrt, torch.rsqrt, torch.square,
    torch.sign, torch.erf, torch.masked_fill,
    F.relu, F.relu6, F.hardtanh, F.gelu, F.silu, F.elu, F.celu, F.selu, F.leaky_relu, F.softplus,
    F.softsign, F.hardswish, F.hardsigmoid, F.mish, F.sigmoid, F.tanh, F.dropout, F.logsigmoid,
    F.threshold, F.tanhshrink,
}
_POINTWISE_METHODS = {"add", "sub", "mul", "div", "true_divide", "pow", "neg", "relu", "sigmoid", "tanh",
                      "exp", "log", "log1p", "abs", "sqrt", "rsqrt", "clamp", "clamp_min", "clamp_max",
                      "clip", "square", "sign", "masked_fill", "float", "half", "double", "to", "type_as",
                      "contiguous", "maximum", "minimum", "erf"}
# Operations that keep every value where it is (zero stays zero: `clean` passes through).
_IDENTITY_LIKE = {"float", "half", "double", "to", "type_as", "contiguous", F.dropout}
_IDENTITY_LIKE_MODULES = (nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity)
# Layout operations: time moves with the data (checked through the traced shapes).
_LAYOUT_FUNCTIONS = {torch.transpose, torch.permute, torch.unsqueeze, torch.squeeze, torch.movedim,
                     torch.swapaxes, torch.flatten, torch.reshape}
_LAYOUT_METHODS = {"transpose", "permute", "unsqueeze", "squeeze", "movedim", "swapaxes", "view",
                   "reshape", "flatten", "unflatten", "expand", "expand_as", "repeat", "view_as",
                   "reshape_as"}
_REGROUPING = {torch.flatten, torch.reshape, "view", "reshape", "flatten", "unflatten", "view_as",
               "reshape_as"}
# Operations over given dims: (argument position of dim, default dims; None = all dims).
_DIM_FUNCTIONS = {
    torch.softmax: (1, "required"), torch.log_softmax: (1, "required"), F.softmax: (1, "required"),
    F.log_softmax: (1, "required"), torch.sum: (1, None), torch.mean: (1, None), torch.amax: (1, None),
    torch.amin: (1, None), torch.std: (1, None), torch.var: (1, None), torch.logsumexp: (1, "required"),
    torch.prod: (1, None), torch.cumsum: (1, "required"), F.normalize: (2, 1), F.glu: (1, -1),
}
_DIM_METHODS = {"softmax": (1, "required"), "log_softmax": (1, "required"), "sum": (1, None),
                "mean": (1, None), "amax": (1, None), "amin": (1, None), "std": (1, None), "var": (1, None),
                "logsumexp": (1, "required"), "prod": (1, None), "cumsum": (1, "required")}
_SPLIT_FUNCTIONS = {torch.chunk: (2, 0), torch.split: (2, 0), torch.unbind: (1, 0)}
_SPLIT_METHODS = {"chunk": (2, 0), "split": (2, 0), "unbind": (1, 0)}
_SIZE_METHODS = {"size", "dim"}
_SIZE_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.neg}


def _arg(node: Node, pos: int, name: str, default=None):
    if name in node.kwargs:
        return node.kwargs[name]
    if len(node.args) > pos:
        return node.args[pos]
    return default


def _dims(d, rank: int) -> Optional[set]:
    if d is None:
        return None
    if isinstance(d, (list, tuple)):
        return {x % rank for x in d}
    return {d % rank}


# ---------------------------------------------------------------------------------------------
# The plan

@dataclass
class _ConvAct:
    kind: str            # "conv", "max", "avg"
    cache: int           # C: frames of context carried (negative: frames dropped from the chunk)
    state: Optional[int]
    site: Optional[int]  # mask site for the input, or None
    stride: int
    dilation: int = 1
    groups: int = 1
    kernel: int = 1
    weight_from_args: bool = False  # F.conv1d: weight and bias are arguments


@dataclass
class _RNNAct:
    states: list
    site: Optional[int]


@dataclass
class _SliceAct:
    index: Any           # the index with the time entry made whole
    delay_state: Optional[int]
    delay: int


@dataclass
class _PadAct:
    pad: Optional[tuple]  # the padding of the other axes, or None when only time was padded


@dataclass
class StreamPlan:
    """What the step function and the session need to know about a streamed model."""
    input_axis: int
    frame_multiple: int                 # chunks hold a multiple of this many input frames
    output: Stream
    state_shapes: list = field(default_factory=list)
    sites: list = field(default_factory=list)  # Streams whose frames outside [0, length) are zeroed

    @property
    def output_axis(self) -> int:
        return self.output.axis

    @property
    def latency_frames(self) -> int:
        """Input frames by which the output lags: the model's lookahead (plus stride rounding)."""
        return self.output.delay * self.output.rate

    def limits(self, pos: int, total: Optional[int]):
        """The [lo, hi) chunk-frame range of each mask site for a chunk starting at input
        frame `pos`, the utterance having `total` frames (None: not known yet)."""
        rows = []
        for s in self.sites:
            base = pos // s.rate
            lo = s.delay - base
            hi = LIMIT_BIG if total is None else s.delay + s.length(total) - base
            rows.append((min(max(lo, -LIMIT_BIG), LIMIT_BIG), min(max(hi, -LIMIT_BIG), LIMIT_BIG)))
        return np.asarray(rows, np.float32).reshape(len(self.sites), 2)

    def frames_needed(self, total: int) -> int:
        """Input frames (real then zeros) to feed so that the whole output has come out."""
        o = self.output
        need = o.rate * (o.delay + o.length(total))
        m = self.frame_multiple
        return max(-(-need // m) * m, -(-total // m) * m)


class _Analysis:
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
        return _describe(self.root, node)

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
            raise _err(f"{self.desc(node)} mixes frames across the whole utterance (its output shape "
                       f"{a} changes in several dimensions with the utterance length)")
        return changed[0] if changed else None

    def check_length(self, node, s: Stream):
        """The length model of `s` must give the traced lengths."""
        extra = sum(s.pad)
        for run, total in enumerate(self.lengths):
            got = self.shape(node, run)[s.axis]
            if s.length(total) + extra != got:
                raise _err(f"cannot tell how {self.desc(node)} maps frames over time (expected "
                           f"{s.length(total) + extra} frames for a {total}-frame utterance, it gives {got})")

    def streams_in(self, node):
        ins = []
        for n in node.all_input_nodes:
            i = self.info.get(n)
            if isinstance(i, _Global):
                raise _err(f"{self.desc(node)} uses a value that needs the whole utterance: {i.reason}")
            if isinstance(i, Stream):
                ins.append((n, i))
            elif isinstance(i, tuple):
                raise _err(f"{self.desc(node)} takes a tuple of time series; index it first")
        return ins

    def no_pending_pad(self, node, ins):
        for n, s in ins:
            if s.pad != (0, 0):
                raise _err(f"{self.desc(node)} uses a value padded over time ({self.desc(n)}); a zero "
                           "padding over time can only feed a Conv1d or pooling layer")

    def align(self, node, ins) -> int:
        """Delays the earlier inputs so all arrive with the latest delay; returns it."""
        rates = {s.rate for _, s in ins}
        if len(rates) > 1:
            raise _err(f"{self.desc(node)} combines values at different frame rates ({sorted(rates)} input "
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
        out = _first_output(node)
        i = self.info.get(out) if isinstance(out, Node) else None
        if isinstance(i, tuple):  # a layer's (output, state) returned as is
            i = i[0]
        if isinstance(i, _Global):
            raise _err(f"the model's output needs the whole utterance: {i.reason}")
        if not isinstance(i, Stream):
            raise _err("the model's output does not have a time axis that follows its input's")
        if i.pad != (0, 0):
            raise _err("the model's output is padded over time")
        return i

    def visit(self, node):
        if node.op == "get_attr":
            return None
        ins_all = [self.info.get(n) for n in node.all_input_nodes]
        if node.op == "call_method" and node.target in _SIZE_METHODS or \
                node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
            return _DYN if any(isinstance(i, Stream) for i in ins_all) else None
        if all(i is None for i in ins_all):
            return None  # no time in or out: constants, weights
        if node.op == "call_function" and node.target is operator.getitem:
            return self.getitem(node)
        if any(i == _DYN for i in ins_all):  # a value computed from a number of frames
            if all(i in (None, _DYN) for i in ins_all) and node.op == "call_function" and \
                    node.target in _SIZE_ARITHMETIC:
                return _DYN  # still a size (e.g. T // 2)
            if not self.is_layout(node):  # sizes are fine in a view's shape, not as values
                raise _err(f"{self.desc(node)} computes with the number of frames, which is a chunk's "
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
        return (node.op == "call_method" and node.target in _LAYOUT_METHODS) or \
            (node.op == "call_function" and node.target in _LAYOUT_FUNCTIONS)

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
        if (op == "call_function" and key in _POINTWISE_FUNCTIONS) or \
                (op == "call_method" and key in _POINTWISE_METHODS):
            return self.pointwise(node, ins, clean=key in _IDENTITY_LIKE and len(ins) == 1)
        if self.is_layout(node):
            s = ins[0][1]
            if len(ins) > 1:
                raise _err(f"{self.desc(node)} takes its shape from another time series")
            out = self.out_stream(node, s, clean=s.clean)
            if out is None:
                raise _err(f"{self.desc(node)} merges the time axis with another one")
            for run in (0, 1):
                if self.shape(node, run)[out.axis] != self.shape(ins[0][0], run)[s.axis]:
                    raise _err(f"{self.desc(node)} merges or splits the time axis")
            if key in _REGROUPING:  # frames stay whole only if the dims before time are the same
                a_in, a_out = self.shape(ins[0][0]), self.shape(node)
                if math.prod(a_in[:s.axis]) != math.prod(a_out[:out.axis]):
                    raise _err(f"{self.desc(node)} regroups the time axis with others")
            return out
        spec = (_DIM_FUNCTIONS.get(key) if op == "call_function" else
                _DIM_METHODS.get(key) if op == "call_method" else None)
        if spec is not None:
            pos, default = spec
            name = "dim"
            d = _arg(node, pos, name, default)
            if isinstance(d, Node):
                raise _err(f"{self.desc(node)} has a computed dim")
            if d == "required":
                raise _err(f"{self.desc(node)} has no dim (implicit dims are not streamed)")
            dims = _dims(d, first_rank)
            if dims is None or t_first in dims:
                return _Global(f"{self.desc(node)} works over the time axis")
            return self.pointwise(node, ins)
        if op == "call_function" and key is F.layer_norm:
            ns = _arg(node, 1, "normalized_shape")
            n = len(ns) if isinstance(ns, (list, tuple)) else 1
            if t_first >= first_rank - n:
                return _Global(f"{self.desc(node)} normalises over the time axis")
            return self.pointwise(node, ins)
        if (op == "call_function" and key in (F.linear, torch.matmul, operator.matmul)):
            if len(ins) > 1 or ins[0][0] is not node.args[0]:
                raise _err(f"{self.desc(node)} multiplies by a time series (mixes frames)")
            if t_first == first_rank - 1:
                return _Global(f"{self.desc(node)} multiplies over the time axis")
            return self.pointwise(node, ins)
        if op == "call_function" and key in (torch.cat, torch.concat, torch.stack):
            d = _arg(node, 1, "dim", 0)
            if key is not torch.stack and d % first_rank == t_first:
                raise _err(f"{self.desc(node)} concatenates over time")
            return self.pointwise(node, ins, broadcast=False)
        split = (_SPLIT_FUNCTIONS.get(key) if op == "call_function" else
                 _SPLIT_METHODS.get(key) if op == "call_method" else None)
        if split is not None:
            d = _arg(node, *split[:1], "dim", split[1])
            if d % first_rank == t_first:
                raise _err(f"{self.desc(node)} splits over time")
            s = ins[0][1]
            return tuple(Stream(t_first if key not in (torch.unbind, "unbind") or d % first_rank > t_first
                                else t_first - 1, s.rate, s.delay, s.length) for _ in self.shape(node))
        what = f"{op} {getattr(key, '__name__', key)}"
        raise _err(f"cannot tell whether {self.desc(node)} works frame by frame ({what} is not among the "
                   "operations wispy streams)")

    def pointwise(self, node, ins, *, clean=False, broadcast=True) -> Stream:
        self.no_pending_pad(node, ins)
        delay = self.align(node, ins)
        axis = self.time_axis_of(node)
        if axis is None:
            return _Global(f"{self.desc(node)} leaves no time axis")
        out_rank = len(self.shape(node))
        for n, s in ins:
            expect = s.axis + (out_rank - len(self.shape(n))) if broadcast else None
            if broadcast and expect != axis:
                raise _err(f"{self.desc(node)} combines {self.desc(n)}'s time axis {s.axis} with another axis")
        s0 = ins[0][1]
        out = Stream(axis, s0.rate, delay, s0.length, clean=clean and all(s.clean for _, s in ins))
        self.check_length(node, out)
        return out

    def getitem(self, node):
        src, index = node.args
        i = self.info.get(src)
        if isinstance(i, _Global):
            raise _err(f"{self.desc(node)} uses a value that needs the whole utterance: {i.reason}")
        if isinstance(i, tuple):  # an element of a layer's tuple output
            e = i[index]
            if isinstance(e, Stream):
                self.check_length(node, e)
            return e
        if i == _DYN:
            return _DYN
        if not isinstance(i, Stream):
            return None
        self.no_pending_pad(node, [(src, i)])
        rank = len(self.shape(src))
        idx = index if isinstance(index, tuple) else (index,)
        if any(isinstance(e, (Node, list, torch.Tensor)) for e in idx) or any(
                isinstance(e, slice) and any(isinstance(v, Node) for v in (e.start, e.stop, e.step)) for e in idx):
            raise _err(f"{self.desc(node)} indexes a time series with tensors or computed bounds")
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
            raise _err(f"{self.desc(node)} picks one frame")
        start, stop, step = e.start or 0, e.stop, e.step or 1
        if step != 1 or start < 0:
            raise _err(f"{self.desc(node)} slices time with a step or from the end (needs the whole utterance)")
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
        self.actions[node] = _SliceAct(tuple(whole), state, trail)
        length = i.length
        out = Stream(i.axis, i.rate, i.delay + start + trail,
                     lambda T, L=length, a=start, b=stop: len(range(L(T))[a:b]))
        axis = self.time_axis_of(node)
        if axis is None:
            raise _err(f"{self.desc(node)} leaves no time axis")
        out = replace(out, axis=axis)
        self.check_length(node, out)
        return out

    def function_window(self, node, ins):
        key = node.target
        if key is F.pad:
            pad = list(_arg(node, 1, "pad"))
            mode = _arg(node, 2, "mode", "constant")
            value = _arg(node, 3, "value", None)
            return self.pad(node, ins, pad, mode, value)
        k = _arg(node, 1, "kernel_size")
        s = _arg(node, 2, "stride", None) or k
        p = _arg(node, 3, "padding", 0)
        if key is F.max_pool1d:
            d = _arg(node, 4, "dilation", 1)
            ceil = _arg(node, 5, "ceil_mode", False)
            extra_ok = not _arg(node, 6, "return_indices", False)
            return self.pool(node, ins, "max", k, s, p, d, ceil, extra_ok)
        ceil = _arg(node, 4, "ceil_mode", False)
        cip = _arg(node, 5, "count_include_pad", True)
        return self.pool(node, ins, "avg", k, s, p, 1, ceil, cip or not p)

    def pad(self, node, ins, pad, mode, value):
        s = ins[0][1]
        rank = len(self.shape(ins[0][0]))
        pi = rank - 1 - s.axis
        tl = pad[2 * pi] if 2 * pi < len(pad) else 0
        tr = pad[2 * pi + 1] if 2 * pi + 1 < len(pad) else 0
        if (tl or tr) and (mode != "constant" or value not in (None, 0, 0.0) or tl < 0 or tr < 0):
            raise _err(f"{self.desc(node)} pads time with '{mode}' (value {value}); only zero padding is "
                       "streamed")
        self.no_pending_pad(node, ins)
        rest = list(pad)
        if 2 * pi < len(rest):
            rest[2 * pi] = 0
        if 2 * pi + 1 < len(rest):
            rest[2 * pi + 1] = 0
        self.actions[node] = _PadAct(tuple(rest) if any(rest) else None)
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
            raise _err(f"{self.desc(node)} takes a time series as an extra argument")
        n, s = ins[0]
        rank = len(self.shape(n))
        if isinstance(m, _POINTWISE_MODULES):
            return self.pointwise(node, ins, clean=isinstance(m, _IDENTITY_LIKE_MODULES))
        if isinstance(m, nn.PReLU):
            if m.num_parameters > 1 and rank > 1 and s.axis == 1:
                return _Global(f"{self.desc(node)} has a weight per channel on the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, (nn.BatchNorm1d,)):
            if m.training or not m.track_running_stats or m.running_mean is None:
                return _Global(f"{self.desc(node)} normalises with the statistics of the utterance "
                               "(training mode or no running statistics)")
            if s.axis == 1:
                return _Global(f"{self.desc(node)} normalises channels on the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, (nn.InstanceNorm1d, nn.GroupNorm)):
            return _Global(f"{self.desc(node)} normalises over the time axis")
        if isinstance(m, nn.LayerNorm):
            if s.axis >= rank - len(m.normalized_shape):
                return _Global(f"{self.desc(node)} normalises over the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, nn.Linear):
            if s.axis == rank - 1:
                return _Global(f"{self.desc(node)} multiplies over the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax, nn.GLU)):
            if m.dim is None:
                raise _err(f"{self.desc(node)} has no dim (implicit dims are not streamed)")
            if m.dim % rank == s.axis:
                return _Global(f"{self.desc(node)} works over the time axis")
            return self.pointwise(node, ins)
        if isinstance(m, (nn.Flatten, nn.Unflatten)):
            out = self.out_stream(node, s, clean=s.clean)
            if out is None or any(self.shape(node, r)[out.axis] != self.shape(n, r)[s.axis] for r in (0, 1)) \
                    or math.prod(self.shape(n)[:s.axis]) != math.prod(self.shape(node)[:out.axis]):
                raise _err(f"{self.desc(node)} merges the time axis with another one")
            return out
        raise _err(f"cannot tell whether {self.desc(node)} works frame by frame ({type(m).__name__} is not "
                   "among the layers wispy streams)")

    # -- layers over time ----------------------------------------------------------------
    def window(self, node, x_node, s: Stream, *, kind, k, stride, dilation, pl, pr, groups=1,
               weight_from_args=False):
        """A sliding window over time (convolution or pooling): the cache and the delay."""
        rank = len(self.shape(x_node))
        if rank != 3 or s.axis != 2:
            raise _err(f"{self.desc(node)} slides over axis {rank - 1} of its input, but time is axis "
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
        self.actions[node] = _ConvAct(kind, cache, state, site, stride, dilation, groups, k, weight_from_args)
        self.rates.add(s.rate * stride)
        length = s.length
        out = Stream(2, s.rate * stride, d_out,
                     lambda T, L=length, a=pl, b=pr, e=e, st=stride: (L(T) + a + b - e) // st + 1)
        self.check_length(node, out)
        return out

    def conv(self, node, ins, m: Optional[nn.Conv1d]):
        x_node = node.args[0]
        if len(ins) != 1 or ins[0][0] is not x_node:
            raise _err(f"{self.desc(node)} takes its weights from a time series")
        s = ins[0][1]
        if m is not None:
            if m.padding_mode != "zeros" and any(m.padding if not isinstance(m.padding, str) else (1,)):
                raise _err(f"{self.desc(node)} pads with '{m.padding_mode}'; only zero padding is streamed")
            k, stride, dil, groups, pad = m.kernel_size[0], m.stride[0], m.dilation[0], m.groups, m.padding
        else:
            k = self.shape(node.args[1])[-1]
            stride, pad = _arg(node, 3, "stride", 1), _arg(node, 4, "padding", 0)
            dil, groups = _arg(node, 5, "dilation", 1), _arg(node, 6, "groups", 1)
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
            raise _err(f"{self.desc(node)}: pooling over time is streamed without ceil_mode, "
                       "without padding or dilation (max) or with count_include_pad (average), and without "
                       "indices")
        return self.window(node, x_node, ins[0][1], kind=kind, k=k, stride=stride or k, dilation=dilation,
                           pl=pad, pr=pad)

    def rnn(self, node, m: nn.RNNBase, ins):
        if not isinstance(m, (nn.GRU, nn.LSTM)):
            raise _err(f"{self.desc(node)}: only nn.GRU and nn.LSTM are streamed")
        if m.bidirectional:
            raise _err(f"{self.desc(node)} is bidirectional and needs the whole utterance")
        if len(node.args) > 1 or node.kwargs:
            raise _err(f"{self.desc(node)} is given an initial state; streaming carries the state itself")
        self.no_pending_pad(node, ins)
        x_node, s = ins[0]
        rank = len(self.shape(x_node))
        want = 1 if m.batch_first else 0
        if rank != 3 or s.axis != want:
            raise _err(f"{self.desc(node)} runs over axis {want} of a 3-D input, but time is axis {s.axis} "
                       f"there{'' if m.batch_first else ' (say time_axis=0 for [time, batch, feats] input)'}")
        batch = self.shape(x_node)[1 - want]
        h = m.proj_size if getattr(m, "proj_size", 0) else m.hidden_size
        states = [self.add_state((m.num_layers, batch, h))]
        if isinstance(m, nn.LSTM):
            states.append(self.add_state((m.num_layers, batch, m.hidden_size)))
        site = self.add_site(Stream(s.axis, s.rate, s.delay, s.length)) if s.delay > 0 else None
        self.actions[node] = _RNNAct(states, site)
        out = Stream(s.axis, s.rate, s.delay, s.length)
        return (out, _Global(f"{self.desc(node)}'s final state is known only at the end of the utterance"))


def analyse(model: nn.Module, example_chunk: torch.Tensor, time_axis: Optional[int]):
    """Traces `model` and plans its step function. Returns (root, graph, analysis, plan)."""
    root, graph = trace(model)
    rank = example_chunk.dim()
    if rank < 2:
        raise _err(f"the example chunk must have a batch and a time axis, got shape {tuple(example_chunk.shape)}")
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
                        shapes.append({n: _shape_of(v) for n, v in _run_plain(root, graph, x).items()})
                break
            except Exception as e:  # noqa: BLE001  (the model does not take time on this axis)
                failure = e
        else:
            errors.append((axis, False, failure))
            continue
        try:
            a = _Analysis(root, graph, tuple(shapes), lengths, axis)
            out = a.run()
            results.append((axis, a, out))
        except WispyError as e:
            errors.append((axis, True, e))
    if len(results) > 1:
        raise _err(f"the model runs with time on axis {results[0][0]} or {results[1][0]} of its input; "
                   "say which with time_axis=")
    if not results:
        ran = [e for e in errors if e[1]]
        if len(ran) == 1 or (ran and time_axis is not None):
            raise ran[0][2]
        if ran:
            raise _err("; ".join(f"with time on axis {ax}: {str(e).removeprefix('streaming: ')}"
                                 for ax, _, e in ran) + " (say which axis is time with time_axis=)")
        _, _, e = errors[0]
        raise _err(f"the model does not run on {rank}-D input with a varying axis "
                   f"{' or '.join(str(c) for c in candidates)} ({type(e).__name__}: {str(e)[:200]})") from e
    axis, a, out = results[0]
    multiple = math.lcm(*a.rates)
    plan = StreamPlan(axis, multiple, out, a.state_shapes, a.sites)
    return root, graph, a, plan


# ---------------------------------------------------------------------------------------------
# The step function

class _StreamRNN(nn.Module):
    """`rnn` from a given state over a chunk; with a validity mask, invalid frames keep the
    state."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn = rnn
        self.loop = LoopedRNN(rnn)

    def forward(self, x, valid, *state):
        rnn = self.rnn
        lstm = isinstance(rnn, nn.LSTM)
        if valid is None:
            return self.loop(x, tuple(state) if lstm else state[0])
        xs = x.transpose(0, 1) if rnn.batch_first else x  # [T, B, F]
        h0 = state[0]
        c0 = state[1] if lstm else None
        layer_in, hs, cs = xs, [], []
        for layer in range(rnn.num_layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}", None), getattr(rnn, f"bias_hh_l{layer}", None)
            gi = F.linear(layer_in, w_ih, b_ih)
            if lstm:
                w_hr = getattr(rnn, f"weight_hr_l{layer}", None)

                def step(carry, inp, w_hh=w_hh, b_hh=b_hh, w_hr=w_hr):
                    g, ok = inp
                    h, c = lstm_step(carry[0], carry[1], g, w_hh, b_hh, w_hr)
                    h, c = torch.where(ok, h, carry[0]), torch.where(ok, c, carry[1])
                    return (h, c), h.clone()

                (h, c), ys = time_scan(step, (h0[layer], c0[layer]), (gi, valid))
                cs.append(c)
            else:
                def step(carry, inp, w_hh=w_hh, b_hh=b_hh):
                    g, ok = inp
                    h = torch.where(ok, gru_step(carry, g, w_hh, b_hh), carry)
                    return h, h.clone()

                h, ys = time_scan(step, h0[layer], (gi, valid))
            hs.append(h)
            layer_in = ys
        out = layer_in.transpose(0, 1) if rnn.batch_first else layer_in
        if lstm:
            return out, (torch.stack(hs), torch.stack(cs))
        return out, torch.stack(hs)


def _mask(x, axis: int, limits, site: int, offset: int = 0):
    """Zeroes the frames of x outside [lo, hi) of limits[site] (frame i of x is chunk frame
    i + offset)."""
    n = x.shape[axis]
    idx = torch.arange(n).to(torch.float32)
    if offset:
        idx = idx + float(offset)
    ok = (idx >= limits[site, 0]) & (idx < limits[site, 1])
    shape = [1] * x.dim()
    shape[axis] = n
    return torch.where(ok.reshape(shape), x, torch.zeros((), dtype=x.dtype))


def _delay_line(x, state, axis: int, frames: int, min_chunk: int):
    """x delayed by `frames` (the state holds the last frames of the previous chunk):
    returns (delayed x, new state).

    The delayed chunk is built so that IREE sees its length equal the chunk's: taken as
    `cat(state, x)[:n]`, torch-mlir clamps the slice to `min(n, n + frames)`, which IREE
    cannot fold, and a data-tiled matmul fused with an add of such an operand failed to
    compile (vectors of 8x4096). `cat(state, x[:n - frames])` folds, for chunks of at least
    `frames` frames; shorter ones gather."""
    n = x.shape[axis]
    buf = torch.cat([state, x], axis)
    if min_chunk >= frames:
        out = torch.cat([state, x.narrow(axis, 0, n - frames)], axis)
    else:
        out = buf.index_select(axis, torch.arange(n))
    return out, buf.narrow(axis, n, frames)


class StepModule(nn.Module):
    """forward(chunk, [limits,] *states) -> (output chunk, *new states): the model's graph
    run on a chunk, with each layer over time reading and writing its state."""

    def __init__(self, root: nn.Module, graph: fx.Graph, analysis: _Analysis, plan: StreamPlan):
        super().__init__()
        self.model = root
        self.graph_ = graph
        self.actions = analysis.actions
        self.delays = analysis.delays
        self.info = analysis.info
        self.plan = plan
        self.has_limits = bool(plan.sites)
        self.rnns = nn.ModuleDict()
        self._rnn_names = {}
        for node, act in self.actions.items():
            if isinstance(act, _RNNAct):
                name = f"rnn{len(self._rnn_names)}"
                self.rnns[name] = _StreamRNN(root.get_submodule(node.target))
                self._rnn_names[node] = name

    def forward(self, chunk, *rest):
        limits = rest[0] if self.has_limits else None
        states = list(rest[1:] if self.has_limits else rest)
        new = list(states)
        env = {}

        def fetch(n, consumer):
            v = env[n]
            d = self.delays.get((consumer, n))
            if d is not None:
                idx, frames, axis, rate = d
                v, new[idx] = _delay_line(v, states[idx], axis, frames, self.plan.frame_multiple // rate)
            return v

        out = None
        for node in self.graph_.nodes:
            if node.op == "placeholder":
                env[node] = chunk
                continue
            if node.op == "output":
                out = env[_first_output(node)]
                out = out[0] if isinstance(out, tuple) else out
                break
            args = map_arg(node.args, lambda n, c=node: fetch(n, c))
            kwargs = map_arg(node.kwargs, lambda n, c=node: fetch(n, c))
            act = self.actions.get(node)
            if act is None:
                env[node] = _call(self.model, node, args, kwargs)
            elif isinstance(act, _ConvAct):
                env[node] = self._window(node, act, args, kwargs, limits, states, new)
            elif isinstance(act, _RNNAct):
                x = args[0]
                valid = None
                if act.site is not None:
                    axis = self.info[node][0].axis
                    idx = torch.arange(x.shape[axis]).to(torch.float32)
                    valid = (idx >= limits[act.site, 0]) & (idx < limits[act.site, 1])
                st = [states[i] for i in act.states]
                y, fin = self.rnns[self._rnn_names[node]](x, valid, *st)
                fin = fin if isinstance(fin, tuple) else (fin,)
                for i, v in zip(act.states, fin):
                    new[i] = v
                env[node] = (y, fin[0] if len(fin) == 1 else fin)
            elif isinstance(act, _SliceAct):
                y = args[0][act.index]
                if act.delay_state is not None:
                    info = self.info[node]
                    y, new[act.delay_state] = _delay_line(y, states[act.delay_state], info.axis, act.delay,
                                                          self.plan.frame_multiple // info.rate)
                env[node] = y
            elif isinstance(act, _PadAct):
                env[node] = args[0] if act.pad is None else F.pad(args[0], act.pad)
            else:
                raise AssertionError(act)
        return (out, *new)

    def _window(self, node, act: _ConvAct, args, kwargs, limits, states, new):
        x = args[0]
        c = act.cache
        if c > 0:
            buf = torch.cat([states[act.state], x], 2)
        elif c < 0:
            buf = x.narrow(2, -c, x.shape[2] + c)
        else:
            buf = x
        if act.site is not None:
            # Masked after the concatenation (the cached frames again, to the same effect):
            # masking the chunk fused into its producer's dispatch, which IREE 3.13's CPU
            # codegen could not tile when that producer had a second consumer.
            buf = _mask(buf, 2, limits, act.site, offset=-c)
        if c > 0:
            new[act.state] = buf.narrow(2, buf.shape[2] - c, c)
        if act.kind == "max":
            # F.max_pool1d makes torch.export specialise the chunk length; unfold does not
            return buf.unfold(2, act.kernel, act.stride).amax(-1)
        if act.kind == "avg":
            return F.avg_pool1d(buf, act.kernel, act.stride, 0)
        if act.weight_from_args:
            weight = args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
        else:
            m = self.model.get_submodule(node.target)
            weight, bias = m.weight, m.bias
        return F.conv1d(buf, weight, bias, act.stride, 0, act.dilation, act.groups)


def build_step(model: nn.Module, example_chunk, time_axis: Optional[int] = None) -> tuple[StepModule, StreamPlan]:
    """The step function of `model` (a torch module, eager) and its plan."""
    chunk = torch.as_tensor(example_chunk)
    root, graph, analysis, plan = analyse(model, chunk, time_axis)
    # eval(): compile_model puts a module in training mode back into it afterwards, which
    # would reach the user's model (and BatchNorm would then update its statistics)
    return StepModule(root, graph, analysis, plan).eval(), plan
