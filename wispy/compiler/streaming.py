"""Streaming recurrent models: a compiled step function and a session that carries state.

    sm = wispy.compile_streaming(model, example_chunk)      # model: [batch, frames, feats]
    session = sm.session()
    for chunk in chunks:                                    # any number of frames each
        y = session.feed(chunk)                             # same as the whole-utterance output

The compiled module's `main(chunk, *states) -> (outputs, *new_states)` runs a chunk of
any length (one module for every chunk size) from the recurrent state left by the
previous chunk; `StreamingSession` keeps that state between calls. Each nn.GRU/nn.LSTM
of the model is swapped, during export, for a module that starts from the state given
to `main` and reports the state it ends in (its recurrence is the same loop as
`compile_model`'s). Layers that mix frames (Conv1d over time, bidirectional RNNs) need
context beyond a chunk and are refused with an error that says so.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import WispyError
from .recurrent import LoopedRNN


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


def _state_specs(rnn: nn.RNNBase, batch: int):
    h = rnn.proj_size if getattr(rnn, "proj_size", 0) else rnn.hidden_size
    specs = [(rnn.num_layers, batch, h)]
    if isinstance(rnn, nn.LSTM):
        specs.append((rnn.num_layers, batch, rnn.hidden_size))
    return specs


class _StepFunction(nn.Module):
    """forward(chunk, *states) -> (model(chunk), *new_states)."""

    def __init__(self, model: nn.Module, rnns: list):
        super().__init__()
        self.model = model
        self.rnns = rnns  # [(parent, name, _StatefulRNN)]
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


def _check_streamable(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv1d) and (m.kernel_size[0] > 1 or m.stride[0] > 1):
            raise WispyError(f"streaming: layer '{name}' ({m}) mixes frames across chunk boundaries; "
                             "convolutions over time are not streamed yet (compile the whole utterance "
                             "with compile_model)")
        if isinstance(m, (nn.GRU, nn.LSTM)) and m.bidirectional:
            raise WispyError(f"streaming: layer '{name}' is bidirectional and needs the whole utterance")
        if isinstance(m, (nn.GRU, nn.LSTM)) and not m.batch_first:
            raise WispyError(f"streaming: layer '{name}' must be batch_first ([batch, frames, features])")


class StreamingModel:
    """A compiled step function plus what a session needs to start one."""

    def __init__(self, compiled, state_shapes: list, dtype=np.float32):
        self.compiled = compiled
        self.state_shapes = state_shapes
        self.dtype = dtype

    def initial_state(self) -> list[np.ndarray]:
        return [np.zeros(s, self.dtype) for s in self.state_shapes]

    def step(self, chunk, states: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        outs = self.compiled.run(np.ascontiguousarray(chunk, dtype=self.dtype), *states)
        return outs[0], list(outs[1:])

    def session(self) -> "StreamingSession":
        return StreamingSession(self)

    def save(self, path):
        """The .vmfb of `main(chunk, *states) -> (outputs, *states)` for iree-run-module."""
        return self.compiled.save(path)


class StreamingSession:
    """Feeds chunks of frames through a StreamingModel, carrying the recurrent state."""

    def __init__(self, model: StreamingModel):
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.states = self.model.initial_state()
        self.frames = 0

    def feed(self, chunk) -> np.ndarray:
        if isinstance(chunk, torch.Tensor):
            chunk = chunk.detach().cpu().numpy()
        out, self.states = self.model.step(chunk, self.states)
        self.frames += chunk.shape[1]
        return out


def compile_streaming(model: nn.Module, example_chunk, *, target="host", max_chunk_frames: int = 4096,
                      **compile_kw) -> StreamingModel:
    """Compiles `model` (batch_first recurrent layers, per-frame other layers) as a step
    function over chunks of 1..max_chunk_frames frames. Other keywords go to compile_model."""
    from .api import compile_model

    if not isinstance(model, nn.Module):
        raise WispyError(f"compile_streaming expects a torch.nn.Module, got {type(model).__name__}")
    model.eval()
    _check_streamable(model)
    chunk = torch.as_tensor(example_chunk)
    if chunk.dim() != 3:
        raise WispyError(f"the example chunk must be [batch, frames, features], got shape {tuple(chunk.shape)}")
    batch = chunk.shape[0]
    with _stateful_rnns(model) as rnns:
        if not rnns:
            raise WispyError("the model has no nn.GRU or nn.LSTM: there is no state to stream")
        shapes = [s for _, _, r in rnns for s in _state_specs(r.rnn, batch)]
        step = _StepFunction(model, rnns)
        states = [torch.zeros(s) for s in shapes]
        frames = torch.export.Dim("frames", min=1, max=max_chunk_frames)
        dyn = {"chunk": {1: frames}, "states": tuple(None for _ in states)}
        # The recurrent layers are loops already (_StatefulRNN): no second swap.
        compiled = compile_model(step, (chunk, *states), target=target, dynamic_shapes=dyn,
                                 rnn_loops=False, **compile_kw)
    return StreamingModel(compiled, shapes)
