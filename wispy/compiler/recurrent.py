"""nn.GRU and nn.LSTM as loops: one compiled module for every sequence length.

`torch.export` of an `nn.GRU` gives `aten.gru.input`, which IREE does not legalize, and
its decomposition unrolls one copy of the cell per frame: compile time and binary size
grow with the utterance. During export wispy swaps each `nn.GRU`/`nn.LSTM` for a
module computing the same function (same parameters, same gate order) as
  * one matmul over all frames for each layer's input projection, then
  * a `scan` over time of the recurrent step (imported as `scf.for`, see
    loop_importer.py), with only the recurrent matrix inside the loop.
Supported: any number of layers, batch_first or not, initial state given or not,
bidirectional, LSTM `proj_size`; dropout between layers is an identity in eval mode.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch._higher_order_ops.scan import scan

# The cells' arithmetic and the whole-layer ops (wispy::gru_sequence, wispy::lstm_sequence)
# live with the ops; the names stay importable from here.
from wispy.dialects.recurrent import (RECURRENT_PRODUCT, gru_sequence, gru_step, lstm_sequence,  # noqa: F401
                                      lstm_step, recurrent_product)


def time_scan(step, init, xs, *, reverse: bool = False):
    """`scan(step, init, xs)` over xs' first dim, optionally from the last frame back.
    The importer runs it as a counted loop, several frames per iteration
    (loop_importer.FRAMES_PER_ITERATION)."""
    if reverse:
        xs = torch.flip(xs, [0])
    carry, ys = scan(step, init, xs)
    if reverse:
        ys = torch.flip(ys, [0])
    return carry, ys


def _param(rnn, name, layer, suffix):
    p = getattr(rnn, f"{name}_l{layer}{suffix}", None)
    return p


class LoopedRNN(nn.Module):
    """Computes what `rnn` (an nn.GRU or nn.LSTM, kept by reference) computes, with the
    time recurrence as a scan, or as one wispy::gru_sequence / lstm_sequence op for the
    layers whose W_hh `kernel` accepts (a rule from wispy.dialects.recurrent.select)."""

    def __init__(self, rnn: nn.RNNBase, kernel=None):
        super().__init__()
        if not isinstance(rnn, (nn.GRU, nn.LSTM)):
            raise TypeError(f"LoopedRNN handles nn.GRU and nn.LSTM, not {type(rnn).__name__}")
        self.rnn = rnn
        self.is_lstm = isinstance(rnn, nn.LSTM)
        # The layers (layer, direction suffix) whose recurrence becomes one
        # wispy::gru_sequence or wispy::lstm_sequence op: kernel(w_hh) is asked here, on
        # the real weights (the export traces with fake ones). Not an LSTM with proj_size
        # (h is then the projection of what the kernel computes).
        self.kernel_layers = set()
        if kernel is not None and not getattr(rnn, "proj_size", 0):
            for layer in range(rnn.num_layers):
                for sfx in ("", "_reverse") if rnn.bidirectional else ("",):
                    if kernel(_param(rnn, "weight_hh", layer, sfx)):
                        self.kernel_layers.add((layer, sfx))

    def flatten_parameters(self) -> None:
        """nn.GRU's cuDNN weight packing: nothing to pack here (models call it in forward)."""

    def forward(self, input, hx=None):  # noqa: A002  (nn.GRU's own argument names)
        rnn = self.rnn
        x = input
        if x.dim() not in (2, 3):  # as nn.GRU says it, not as the scan below would
            raise ValueError(f"{type(rnn).__name__}: Expected input to be 2D or 3D, got {x.dim()}D instead")
        if rnn.batch_first:
            x = x.transpose(0, 1)  # [T, B, F]
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        dirs = 2 if rnn.bidirectional else 1
        batch = x.shape[1]
        real_h = rnn.proj_size if getattr(rnn, "proj_size", 0) else rnn.hidden_size
        if hx is None:
            h0 = x.new_zeros(rnn.num_layers * dirs, batch, real_h)
            c0 = x.new_zeros(rnn.num_layers * dirs, batch, rnn.hidden_size) if self.is_lstm else None
        elif self.is_lstm:
            h0, c0 = hx
            if unbatched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        else:
            h0, c0 = (hx.unsqueeze(1) if unbatched else hx), None

        layer_in = x
        h_n, c_n = [], []
        for layer in range(rnn.num_layers):
            outs = []
            for d in range(dirs):
                sfx = "_reverse" if d == 1 else ""
                k = layer * dirs + d
                w_ih, w_hh = _param(rnn, "weight_ih", layer, sfx), _param(rnn, "weight_hh", layer, sfx)
                b_ih, b_hh = _param(rnn, "bias_ih", layer, sfx), _param(rnn, "bias_hh", layer, sfx)
                in_kernel = (layer, sfx) in self.kernel_layers
                if self.is_lstm and b_ih is not None and b_hh is not None and not in_kernel:
                    # Both biases on the projection of all frames: one add per step fewer.
                    b_ih, b_hh = b_ih + b_hh, None
                if not in_kernel:
                    gi = F.linear(layer_in, w_ih, b_ih)  # all frames at once: [T, B, G*H]
                if in_kernel:
                    xs = torch.flip(layer_in, [0]) if d == 1 else layer_in
                    if self.is_lstm:
                        ys, cs = lstm_sequence(xs, h0[k], c0[k], w_ih, b_ih, w_hh, b_hh)
                        c_n.append(cs[-1])
                    else:
                        ys = gru_sequence(xs, h0[k], w_ih, b_ih, w_hh, b_hh)
                    h = ys[-1]
                    if d == 1:
                        ys = torch.flip(ys, [0])
                elif self.is_lstm:
                    w_hr = _param(rnn, "weight_hr", layer, sfx)

                    def step(carry_h, carry_c, gi_t, w_hh=w_hh, b_hh=b_hh, w_hr=w_hr):
                        h, c = lstm_step(carry_h, carry_c, gi_t, w_hh, b_hh, w_hr)
                        return (h, c), h.clone()

                    (h, c), ys = time_scan(lambda carry, g: step(carry[0], carry[1], g), (h0[k], c0[k]),
                                           gi, reverse=(d == 1))
                    c_n.append(c)
                else:
                    def step(carry_h, gi_t, w_hh=w_hh, b_hh=b_hh):
                        h = gru_step(carry_h, gi_t, w_hh, b_hh)
                        return h, h.clone()

                    h, ys = time_scan(step, h0[k], gi, reverse=(d == 1))
                h_n.append(h)
                outs.append(ys)
            layer_in = outs[0] if dirs == 1 else torch.cat(outs, dim=-1)
        out = layer_in
        h_n = torch.stack(h_n)
        if unbatched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)
        if rnn.batch_first and not unbatched:
            out = out.transpose(0, 1)
        if self.is_lstm:
            c_n = torch.stack(c_n)
            if unbatched:
                c_n = c_n.squeeze(1)
            return out, (h_n, c_n)
        return out, h_n


@contextlib.contextmanager
def recurrent_as_loops(model: nn.Module, kernel=None):
    """Within the block, every nn.GRU/nn.LSTM inside `model` is a LoopedRNN (restored
    after, also on error), with `kernel` (see LoopedRNN). A bare nn.GRU/nn.LSTM model is
    wrapped by the caller."""
    swapped = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children() if isinstance(child, (nn.GRU, nn.LSTM))]
    for parent, name, child in swapped:  # swap after the walk: the walk would enter the wrappers
        setattr(parent, name, LoopedRNN(child, kernel))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def as_loops(model: nn.Module, kernel=None) -> nn.Module:
    """A model to export whose recurrent layers are loops (wraps a bare nn.GRU/nn.LSTM)."""
    if isinstance(model, (nn.GRU, nn.LSTM)):
        return LoopedRNN(model, kernel)
    return model
