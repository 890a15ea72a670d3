"""The step function: a chunk in, the outputs and new states out."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.node import map_arg

from wispy.compiler.recurrent import LoopedRNN, gru_step, lstm_step, time_scan
from wispy.compiler.stream.analysis import Analysis, analyse
from wispy.compiler.stream.plan import ConvAct, PadAct, RNNAct, SliceAct, StreamPlan
from wispy.compiler.stream.trace import call_node, first_output


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

    def __init__(self, root: nn.Module, graph: fx.Graph, analysis: Analysis, plan: StreamPlan):
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
            if isinstance(act, RNNAct):
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
                out = env[first_output(node)]
                out = out[0] if isinstance(out, tuple) else out
                break
            args = map_arg(node.args, lambda n, c=node: fetch(n, c))
            kwargs = map_arg(node.kwargs, lambda n, c=node: fetch(n, c))
            act = self.actions.get(node)
            if act is None:
                env[node] = call_node(self.model, node, args, kwargs)
            elif isinstance(act, ConvAct):
                env[node] = self._window(node, act, args, kwargs, limits, states, new)
            elif isinstance(act, RNNAct):
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
            elif isinstance(act, SliceAct):
                y = args[0][act.index]
                if act.delay_state is not None:
                    info = self.info[node]
                    y, new[act.delay_state] = _delay_line(y, states[act.delay_state], info.axis, act.delay,
                                                          self.plan.frame_multiple // info.rate)
                env[node] = y
            elif isinstance(act, PadAct):
                env[node] = args[0] if act.pad is None else F.pad(args[0], act.pad)
            else:
                raise AssertionError(act)
        return (out, *new)

    def _window(self, node, act: ConvAct, args, kwargs, limits, states, new):
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
