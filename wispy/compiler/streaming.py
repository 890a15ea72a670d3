"""Streaming: a compiled step function and a session that carries state between chunks.

    sm = wispy.compile_streaming(model, example_chunk)
    session = sm.session()
    for chunk in chunks:                  # any number of frames each
        y = session.feed(chunk)           # the output frames that are complete
    y = session.flush()                   # the end of the utterance: the last frames

The concatenation of everything `feed` and `flush` return equals the whole-utterance
output of the model.

- **Recurrent layers** (unidirectional `nn.GRU`/`nn.LSTM`) carry their state.
- **Convolutions over time** (`Conv1d` with any kernel, stride, dilation, groups and zero
  padding; `MaxPool1d`/`AvgPool1d`) carry their last input frames: the left context the
  next chunk needs. A 'same'-padded convolution needs frames after the one it outputs
  (lookahead), so its output comes that many frames later; values that meet with
  different delays (residual adds, skip connections) are delayed to match. A model's
  *latency* (`StreamingModel.latency_frames`) is the number of input frames its output
  lags behind the input: its total lookahead, rounded up to its stride.
- **Strided layers** need chunks of a multiple of the total stride
  (`StreamingModel.frame_multiple`) at the step function; a session keeps the
  remainder of a chunk for the next one, so it takes chunks of any size.
- Frame-local layers (activations, eval BatchNorm, per-frame Linear, softmax over
  features, transposes) need nothing. Layers that need the whole utterance
  (bidirectional RNNs, means over time, attention) are refused, naming the layer.

The time axis of the input is found by tracing ([batch, time, feats] for recurrent
models, [batch, feats, time] for convolutional ones); `time_axis=` says it when both
would run. How the step function is built: the package wispy.compiler.stream.

The compiled module's `main(chunk, limits, *states) -> (outputs, *new_states)`:
`limits` (present when some value must be masked) gives, per masked value, the range of
the chunk's frames that lie inside the utterance; `StreamingSession` computes it.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from wispy.errors import InputMismatchError, WispyError
from wispy.compiler.recurrent import LoopedRNN
from wispy.compiler.stream import Stream, StreamPlan, build_step


class StreamingModel:
    """A compiled step function plus what a session needs to run it."""

    def __init__(self, compiled, plan: StreamPlan, input_shape: Sequence[int], output_shape: Sequence[int],
                 dtype=np.float32, max_chunk_frames: int = 4096):
        self.compiled = compiled  # a CompiledModel, or anything with .run(*arrays) -> list of arrays
        self.plan = plan
        self.max_chunk_frames = max_chunk_frames  # the most frames one call of the step function takes
        self.input_shape = tuple(input_shape)    # with 0 frames on the time axis
        self.output_shape = tuple(output_shape)  # with 0 frames on the output's time axis
        self.dtype = dtype

    @property
    def state_shapes(self) -> list:
        return self.plan.state_shapes

    @property
    def time_axis(self) -> int:
        """The time axis of the input chunks."""
        return self.plan.input_axis

    @property
    def output_time_axis(self) -> int:
        return self.plan.output_axis

    @property
    def frame_multiple(self) -> int:
        """The step function takes chunks of a multiple of this many frames (total stride)."""
        return self.plan.frame_multiple

    @property
    def latency_frames(self) -> int:
        """Input frames by which the output lags the input (the model's lookahead)."""
        return self.plan.latency_frames

    def initial_state(self) -> list[np.ndarray]:
        return [np.zeros(s, self.dtype) for s in self.state_shapes]

    def step(self, chunk, states: Sequence[np.ndarray], limits: Optional[np.ndarray] = None
             ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One call of the step function on a chunk of a multiple of `frame_multiple` frames
        (no trimming or limits of its own: StreamingSession does that)."""
        chunk = chunk.detach().cpu().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
        n, m = chunk.shape[self.time_axis], self.frame_multiple
        if n % m or not n:
            raise WispyError(f"streaming: the step function takes chunks of a multiple of {m} frames (the "
                             f"model's total stride), got {n}; StreamingSession.feed takes any number")
        if self.plan.sites and limits is None:
            raise WispyError("streaming: this step function needs the limits of the chunk "
                             "(StreamingModel.plan.limits(first_frame, total_frames_or_None))")
        extra = [limits] if self.plan.sites else []
        outs = self.compiled.run(np.ascontiguousarray(chunk, dtype=self.dtype), *extra, *states)
        return outs[0], list(outs[1:])

    def session(self) -> "StreamingSession":
        return StreamingSession(self)

    def save(self, path):
        """The .vmfb of `main(chunk, [limits,] *states) -> (outputs, *states)` for iree-run-module."""
        return self.compiled.save(path)

    def __repr__(self) -> str:
        return (f"<StreamingModel target={self.compiled.target} time_axis={self.time_axis} "
                f"frame_multiple={self.frame_multiple} latency={self.latency_frames} frames "
                f"states={len(self.state_shapes)}>")


def _check_chunk(chunk: np.ndarray, shape: Sequence[int], axis: int) -> None:
    """A chunk of the shape the model streams: any number of frames on `axis`, the rest fixed."""
    if chunk.ndim != len(shape) or any(a != b for i, (a, b) in enumerate(zip(chunk.shape, shape)) if i != axis):
        want = "x".join("?" if i == axis else str(d) for i, d in enumerate(shape))
        raise InputMismatchError(f"streaming: the chunk has shape {'x'.join(map(str, chunk.shape)) or 'scalar'}, "
                                 f"the model streams chunks of {want} (any number of frames on axis {axis})")


def _frames(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """x[..., start:stop, ...] on `axis` (a view)."""
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


class StreamingSession:
    """Feeds one utterance chunk by chunk through a StreamingModel.

    `feed(chunk)` returns the output frames that are complete so far (possibly none);
    `flush()` (or `finish()`) ends the utterance: it feeds the right padding, returns the
    remaining output frames and starts a new utterance. The concatenation of all returned
    frames equals the whole-utterance output. Outputs lag the input by
    `model.latency_frames` input frames (the lookahead), plus the part of a chunk short
    of a multiple of `model.frame_multiple`, which waits for the next chunk."""

    def __init__(self, model: StreamingModel, max_step_frames: int = 4096):
        self.model = model
        m = model.frame_multiple
        self.max_step_frames = max(m, min(max_step_frames, model.max_chunk_frames) // m * m)
        self.reset()

    def reset(self) -> None:
        """Starts a new utterance."""
        self.states = self.model.initial_state()
        self.frames = 0       # input frames received
        self.fed = 0          # input frames given to the step function
        self.pending = None   # received frames short of a multiple of frame_multiple

    def _empty(self) -> np.ndarray:
        return np.zeros(self.model.output_shape, self.model.dtype)

    def _run(self, x: np.ndarray, total: Optional[int]) -> np.ndarray:
        plan = self.model.plan
        ax, o = plan.input_axis, plan.output
        outs, n = [], x.shape[ax]
        for start in range(0, n, self.max_step_frames):
            piece = x if n <= self.max_step_frames else _frames(x, ax, start, min(start + self.max_step_frames, n))
            limits = plan.limits(self.fed, total) if plan.sites else None
            y, self.states = self.model.step(piece, self.states, limits)
            first = self.fed // o.rate  # the stream index of y's first frame
            lo = max(o.delay - first, 0)
            hi = y.shape[o.axis] if total is None else min(y.shape[o.axis], o.delay + o.length(total) - first)
            self.fed += piece.shape[ax]
            if hi > lo:
                outs.append(y if (lo, hi) == (0, y.shape[o.axis]) else _frames(y, o.axis, lo, hi))
        if len(outs) == 1:
            return outs[0]
        return np.concatenate(outs, o.axis) if outs else self._empty()

    def feed(self, chunk) -> np.ndarray:
        """Takes the next frames of the utterance; returns the output frames now complete."""
        if isinstance(chunk, torch.Tensor):
            chunk = chunk.detach().cpu().numpy()
        chunk = np.asarray(chunk, self.model.dtype)
        ax, m = self.model.time_axis, self.model.frame_multiple
        _check_chunk(chunk, self.model.input_shape, ax)
        self.frames += chunk.shape[ax]
        if self.pending is not None:
            chunk = np.concatenate([self.pending, chunk], ax)
        n = chunk.shape[ax]
        usable = n // m * m
        # a copy: the caller may reuse its buffer for the next chunk
        self.pending = _frames(chunk, ax, usable, n).copy() if usable < n else None
        if not usable:
            return self._empty()
        return self._run(_frames(chunk, ax, 0, usable) if usable < n else chunk, None)

    def flush(self) -> np.ndarray:
        """Ends the utterance: returns its last output frames, then starts a new one."""
        plan = self.model.plan
        ax, total = plan.input_axis, self.frames
        pad = plan.frames_needed(total) - self.fed
        out = self._empty()
        if pad > 0 and total > 0:
            held = 0 if self.pending is None else self.pending.shape[ax]
            shape = list(self.pending.shape if self.pending is not None else self.model.input_shape)
            shape[ax] = pad - held
            zeros = np.zeros(shape, self.model.dtype)
            x = zeros if self.pending is None else np.concatenate([self.pending, zeros], ax)
            out = self._run(x, total)
        self.reset()
        return out

    finish = flush


def compile_streaming(model: nn.Module, example_chunk, *, target="host", max_chunk_frames: int = 65536,
                      time_axis: Optional[int] = None, **compile_kw) -> StreamingModel:
    """Compiles `model` as a step function over chunks of up to `max_chunk_frames` frames.

    example_chunk  a chunk of input ([batch, frames, feats] or [batch, feats, frames]):
                   its shape gives the batch and feature sizes
    time_axis      the input's time axis, when tracing cannot tell
    Other keywords (target, cpu_features, vulkan_target, ...) go to compile_model."""
    from wispy.compiler.api import compile_model

    if not isinstance(model, nn.Module):
        raise WispyError(f"compile_streaming expects a torch.nn.Module, got {type(model).__name__}")
    model.eval()
    chunk = torch.as_tensor(example_chunk)
    try:
        step, plan = build_step(model, chunk, time_axis)
    except WispyError as e:
        if not str(e).startswith("streaming: torch.fx cannot trace") or not _recurrent_only(model):
            raise
        return _compile_recurrent(model, chunk, target=target, max_chunk_frames=max_chunk_frames, **compile_kw)
    args, in_shape, out_shape = _example_step_args(step, plan, chunk)
    ax, m = plan.input_axis, plan.frame_multiple
    k = torch.export.Dim("chunks", min=1, max=max(2, max_chunk_frames // m))
    dyn = {"chunk": {ax: k if m == 1 else m * k}, "rest": tuple(None for _ in args[1:])}
    compiled = compile_model(step, args, target=target, dynamic_shapes=dyn, rnn_loops=False, **compile_kw)
    if compiled.input_specs and compiled.input_specs[0][0][ax] is not None:
        raise WispyError("streaming: torch.export fixed the chunk length of the step function to "
                         f"{compiled.input_specs[0][0][ax]} frames (some layer's shape function needs a "
                         "constant length); please report the model")
    return StreamingModel(compiled, plan, in_shape, out_shape, max_chunk_frames=max_chunk_frames)


def _example_step_args(step, plan: StreamPlan, chunk: torch.Tensor):
    ax, m = plan.input_axis, plan.frame_multiple
    steps = max(2, -(-chunk.shape[ax] // m))  # export specialises a dimension whose example is 1
    shape = list(chunk.shape)
    shape[ax] = steps * m
    x = torch.randn(shape, dtype=chunk.dtype)
    extra = [torch.zeros(len(plan.sites), 2)] if plan.sites else []
    states = [torch.zeros(s) for s in plan.state_shapes]
    with torch.no_grad():
        y = step(x, *extra, *states)[0]
    out_shape = list(y.shape)
    out_shape[plan.output_axis] = 0
    in_shape = list(chunk.shape)
    in_shape[ax] = 0
    return (x, *extra, *states), in_shape, out_shape


class _EagerStep:
    """Runs a step module in PyTorch, with CompiledModel.run's interface."""

    def __init__(self, step: nn.Module):
        self.step = step
        self.target = "torch"

    def run(self, *arrays):
        with torch.no_grad():
            outs = self.step(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        return [o.numpy() for o in outs]


def streaming_reference(model: nn.Module, example_chunk, *, time_axis: Optional[int] = None) -> StreamingModel:
    """The step function of `compile_streaming`, run by PyTorch instead of compiled: the
    same plan, for checking a model streams before compiling it."""
    model.eval()
    chunk = torch.as_tensor(example_chunk)
    step, plan = build_step(model, chunk, time_axis)
    _, in_shape, out_shape = _example_step_args(step, plan, chunk)
    return StreamingModel(_EagerStep(step), plan, in_shape, out_shape)


# ---------------------------------------------------------------------------------------------
# Recurrent models that torch.fx cannot trace: the layers are swapped, the rest runs per frame.

def _recurrent_only(model: nn.Module) -> bool:
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d)) and not (
                isinstance(m, nn.Conv1d) and m.kernel_size[0] == 1 and m.stride[0] == 1):
            return False
        if isinstance(m, (nn.GRU, nn.LSTM)) and (m.bidirectional or not m.batch_first):
            return False
    return any(isinstance(m, (nn.GRU, nn.LSTM)) for m in model.modules())


class _StatefulRNN(nn.Module):
    """Runs `rnn` as a loop from `state_in`, leaving its final state in `state_out`."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn = rnn
        self.loop = LoopedRNN(rnn)
        self.state_in = None
        self.state_out = None

    def forward(self, input, hx=None):  # noqa: A002
        out, state = self.loop(input, self.state_in)
        self.state_out = state
        return out, state


class _StepFunction(nn.Module):
    """forward(chunk, *states) -> (model(chunk), *new_states)."""

    def __init__(self, model: nn.Module, rnns: list):
        super().__init__()
        self.model = model
        self.rnns = rnns
        self.counts = [2 if isinstance(s.rnn, nn.LSTM) else 1 for _, _, s in rnns]

    def forward(self, chunk, *states):
        i = 0
        for (_, _, s), n in zip(self.rnns, self.counts):
            s.state_in = tuple(states[i:i + n]) if n == 2 else states[i]
            i += n
        out = self.model(chunk)
        if isinstance(out, (tuple, list)):
            out = out[0]
        new = []
        for _, _, s in self.rnns:
            new.extend(s.state_out if isinstance(s.state_out, tuple) else (s.state_out,))
        return (out, *new)


@contextlib.contextmanager
def _stateful_rnns(model: nn.Module):
    found = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if isinstance(child, (nn.GRU, nn.LSTM))]
    swapped = []
    for parent, name, child in found:
        s = _StatefulRNN(child)
        setattr(parent, name, s)
        swapped.append((parent, name, s))
    try:
        yield swapped
    finally:
        for parent, name, s in swapped:
            setattr(parent, name, s.rnn)


def _compile_recurrent(model, chunk, *, target, max_chunk_frames, **compile_kw) -> StreamingModel:
    from wispy.compiler.api import compile_model

    if chunk.dim() != 3:
        raise WispyError(f"the example chunk must be [batch, frames, features], got shape {tuple(chunk.shape)}")
    batch = chunk.shape[0]
    with _stateful_rnns(model) as rnns:
        shapes = []
        for _, _, r in rnns:
            h = r.rnn.proj_size if getattr(r.rnn, "proj_size", 0) else r.rnn.hidden_size
            shapes.append((r.rnn.num_layers, batch, h))
            if isinstance(r.rnn, nn.LSTM):
                shapes.append((r.rnn.num_layers, batch, r.rnn.hidden_size))
        step = _StepFunction(model, rnns).eval()
        states = [torch.zeros(s) for s in shapes]
        x = chunk if chunk.shape[1] > 1 else chunk.repeat(1, 2, 1)
        with torch.no_grad():
            y = step(x, *states)[0]
        frames = torch.export.Dim("frames", min=1, max=max_chunk_frames)
        dyn = {"chunk": {1: frames}, "states": tuple(None for _ in states)}
        compiled = compile_model(step, (x, *states), target=target, dynamic_shapes=dyn,
                                 rnn_loops=False, **compile_kw)
    plan = StreamPlan(1, 1, Stream(1, 1, 0, lambda T: T), shapes, [])
    return StreamingModel(compiled, plan, (chunk.shape[0], 0, *chunk.shape[2:]), (y.shape[0], 0, *y.shape[2:]),
                          max_chunk_frames=max_chunk_frames)
