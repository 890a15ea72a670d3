"""A GRU or LSTM layer's whole recurrence as one hand-written CPU dispatch (MLIR text),
its recurrent matrix in BSPC form (wispy/dialects/bspc.py).

IREE runs a recurrent loop written with tensors as a few dispatches per step (the
product, the combine of its partial sums, the gates): a 2x1024 GRU pruned 10x spends as
long between and around those 600 dispatches as in its products. Here one workgroup per
sequence runs every step itself:

    h = h0
    for t in 0..T:
        S = init            (S: acc[3H], acc_in[H], then a slot padding rows add into)
        with the input projection's partial sums (its matrix block-sparse too): for each
        of its buckets' stored rows i, S[prow[b, i]] += prod[b, t, i]
        for each bucket of W_hh, block b, group of G row tiles:
            sums[g] = sum_j values[b, grp, j, g, :] * h[cols[b, j]]   (TL rows per tile)
            S[rows[b, tile*TL + l]] += sums[g][l]
        r = sigmoid(acc[0:H]);  z = sigmoid(acc[H:2H])
        n = tanh(acc_in + r * acc[2H:3H]);  h = n + z * (h - n);  hs[t] = h

(PyTorch's gate order and formulas.) acc starts from b_ih + b_hh for r and z and from
b_hh for n; acc_in from b_ih's n part; the projection's rows of r and z add into acc, its
n rows into acc_in. `prod` ([nb, T*B, r] per bucket) is the projection of every frame
computed before the loop by a batched matmul over the compact blocks. With a dense W_ih
the kernel reads gi = W_ih x_t + b_ih instead (gates r = sigmoid(gi_r + acc_r), ...,
n = tanh(gi_n + r * acc_n)) and acc starts from b_hh. sigmoid(x) is written
0.5 + 0.5 tanh(x / 2), so the three gates share one set of polynomial constants (fewer
registers to rematerialize inside the loop on Arm). S and h live on the stack.

Values are packed [nb, nt / G, c, G, TL]: a group's G tiles of TL rows at column j are
one contiguous run, read once per step. Rows that do not fill a whole group form a
bucket of their own with one shorter group (pack_rows), not a group padded to G tiles. Column strips (RTMobile's pattern: each block
keeps whole columns j0..j0+c) load h four columns at a time; other blocks gather h per
column through `cols`.

An LSTM layer (`cell="lstm"`, PyTorch's gate order i, f, g, o) runs the same products
over W_hh's 4H rows; S is acc[4H] (the projection's rows all add into acc), then the
padding slot at 4H, and its initial value b_hh (+ b_ih with a block-sparse W_ih). The
gates:

        i = sigmoid(acc[0:H]);  f = sigmoid(acc[H:2H]);  g = tanh(acc[2H:3H])
        o = sigmoid(acc[3H:4H]);  c = f * c + i * g;  h = o * tanh(c);  hs[t] = h; cs[t] = c

(plus gi's four parts with a dense W_ih). c_{t-1} is read back from cs[t-1] (c0 at t=0):
no stack for it, and a task of the several-worker kernel that runs twice reads the same
c (see workers.py).

Modules: shape (KernelShape, S's layout, W_hh's packing), operands (the dispatch's
operand types), products (W_hh's and the projection's products), cells (the gates),
one_worker and workers (the two kernels), kernel (the executable around them). The MLIR
text comes from templates/recurrent*.mlir (wispy/kernels/templates.py).
"""
from __future__ import annotations

from wispy.kernels.recurrent.kernel import executable
from wispy.kernels.recurrent.products import LD1X4
from wispy.kernels.recurrent.shape import (
    CELLS,
    STACK_LIMIT_BYTES,
    KernelShape,
    PackedBucket,
    accumulator_sets,
    gates,
    initial_scratch,
    pack_bucket,
    pack_rows,
    results_of,
    scratch_rows,
    scratch_size,
    shape_for,
    supports,
)
from wispy.kernels.recurrent.workers import PartPlan, counter_words, parts_supported, plan_parts

__all__ = ["CELLS", "LD1X4", "STACK_LIMIT_BYTES", "KernelShape", "PackedBucket", "PartPlan", "accumulator_sets",
           "counter_words", "executable", "gates", "initial_scratch", "pack_bucket", "pack_rows",
           "parts_supported", "plan_parts", "results_of", "scratch_rows", "scratch_size", "shape_for",
           "supports"]
