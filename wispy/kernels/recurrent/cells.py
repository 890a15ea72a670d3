"""A GRU's and an LSTM's gate math for GW units at %u, read from S (and gi), written to
hs (and cs): the part of a step after the products (see the package docstring)."""
from __future__ import annotations

from dataclasses import dataclass

from wispy.kernels.templates import render

R = "recurrent.mlir"


@dataclass(frozen=True)
class StepIO:
    """Where a step's gates read and write. H: hidden units; VG, SM: the gate vector's
    and S's types; seq: the sequence's index (%wg, %wb); hs, cs: the results (cs an
    LSTM's) of type state_type; keep_h: also store h_t into %h (the one-worker kernel's
    own copy of h); c0 (of type c0_type): an LSTM's initial cell state."""
    H: int
    VG: str
    SM: str
    seq: str
    hs: str
    cs: str | None
    state_type: str
    keep_h: bool
    c0: str | None = None
    c0_type: str | None = None


def gate_inputs(cell: str, proj) -> tuple:
    """(name, index) of each pre-activation the gates read from S: a GRU's r, z, n (and
    acc_in's i with a block-sparse W_ih), an LSTM's i, f, g, o."""
    if cell == "lstm":
        return (("i", "%u"), ("f", "%uf"), ("g", "%ug"), ("o", "%uo"))
    return (("r", "%u"), ("z", "%uz"), ("n", "%un")) + ((("i", "%ui"),) if proj is not None else ())


def gate_step(cell: str, proj, gi, io: StepIO) -> str:
    """Unit %u's places in S, the pre-activations read from S, and the gates (`gi`: the
    projection's (memref, type) read from gi[%t, seq], or None when its partial sums are
    in S)."""
    reads = [render(R, "read_sum", gate=nm, at=at, SM=io.SM, VG=io.VG) for nm, at in gate_inputs(cell, proj)]
    gates = _lstm(gi, io) if cell == "lstm" else _gru(gi, io)
    return "\n".join([render(R, f"{cell}_indices"), *reads, gates])


def _read_gi(gi, io: StepIO, gate: str, at: str) -> str:
    return render(R, "read_gi", gate=gate, gi=gi[0], seq=io.seq, at=at, gi_type=gi[1], VG=io.VG)


def _sigmoid(gate: str, pre: str, out: str, VG: str) -> str:
    return render(R, "sigmoid", gate=gate, pre=pre, out=out, VG=VG)


def _keep_h(io: StepIO) -> str:
    return render(R, "keep_h", H=io.H, VG=io.VG) if io.keep_h else ""


def _gru(gi, io: StepIO) -> str:
    """r = sigmoid(.), z = sigmoid(.), n = tanh(gi_n + r * acc_n), h = n + z * (h - n)."""
    inputs = []
    if gi is not None:
        inputs = [_read_gi(gi, io, nm, at) for nm, at in (("r", "%u"), ("z", "%uz"), ("n", "%un"))]
        inputs += [render(R, "add_gi", gate=nm, VG=io.VG) for nm in ("r", "z")]
        pre, gin = {"r": "%p_r", "z": "%p_z"}, "%gi_n"
    else:
        pre, gin = {"r": "%gh_r", "z": "%gh_z"}, "%gh_i"
    sigmoids = [_sigmoid(nm, pre[nm], f"{nm}g", io.VG) for nm in ("r", "z")]
    return render(R, "gru", inputs=inputs, sigmoids=sigmoids, gin=gin, keep_h=_keep_h(io), hs=io.hs,
                  seq=io.seq, state_type=io.state_type, H=io.H, VG=io.VG)


def _lstm(gi, io: StepIO) -> str:
    """i, f, o = sigmoid(.), g = tanh(.), c = f * c + i * g, h = o * tanh(c); c_{t-1} from
    c0 (%first) or cs[%tp]."""
    pre, inputs = {}, []
    for nm, at in gate_inputs("lstm", gi):
        if gi is not None:
            inputs += [_read_gi(gi, io, nm, at), render(R, "add_gi", gate=nm, VG=io.VG)]
            pre[nm] = f"%p_{nm}"
        else:
            pre[nm] = f"%gh_{nm}"
    sigmoids = [_sigmoid(nm, pre[nm], f"{nm}s", io.VG) for nm in ("i", "f", "o")]
    return render(R, "lstm", inputs=inputs, sigmoids=sigmoids, pre_g=pre["g"], c0=io.c0, c0_type=io.c0_type,
                  seq=io.seq, cs=io.cs, hs=io.hs, state_type=io.state_type, keep_h=_keep_h(io), VG=io.VG)
