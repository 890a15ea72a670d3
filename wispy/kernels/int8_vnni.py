"""An int8 matmul for x86 CPUs with AVX-512 VNNI, as a hand-written dispatch (MLIR text):
C[M, N] (int32) = A[M, K] (int8) @ W[N, K]^T (int8), exact.

`vpdpbusd` multiplies unsigned by signed bytes, four pairs into each int32 lane: 64
multiply-adds an instruction, where IREE's own int8 matmuls widen to 16 bits first
(`vpdpwssd`, 32). So the kernel reads A as unsigned, a + 128 (one xor of each 4-byte word),
and adds corr[n] = -128 * sum_k W[n, k]: (a + 128) w + corr = a w.

Operands: A [M, K] int8 (K a multiple of 4, any M), W packed [N/16, K/4, 64] (per 16
output columns and 4 k: 16 x 4 bytes, column-major), corr [N] int32; result C [M, N]
int32. One workgroup per ROWS rows and COLS columns: ROWS x COLS/16 accumulators of 16
int32, per 4 k one broadcast of 4 bytes of A per row and one `vpdpbusd` per row and
16-column block (`llvm.call_intrinsic`; tests/compiler/test_toolchain_intrinsics.py). The
workgroups walk the rows first, so consecutive ones reuse a column block's weights from
cache (docs/design/int8-winograd.md#the-vnni-kernel).

Two extensions, both for convolutions:
- G products in one dispatch (a leading dimension on every operand): a Winograd layer's
  positions, one dispatch where there were G.
- A read through a `Window`: A's rows are taken straight from the convolution's input rows
  (im2col without its copy; for Winograd, the tiles of every 3-tap piece, which overlap).
A ragged last tile of rows is handled in the kernel (no padded copy of A, no sliced copy of C).

The MLIR text comes from templates/int8_vnni.mlir (wispy/kernels/templates.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from wispy.kernels.templates import render

T = "int8_vnni.mlir"
ROWS, COLS = 8, 32
INTRINSIC = "llvm.x86.avx512.vpdpbusd.512"


@dataclass(frozen=True)
class Window:
    """How A's logical row (s, t), k = (piece q, channel c), is read from the physical
    A [S * seq_rows, Kc]: row s * seq_rows + row_stride * t + piece_stride * q, column c
    (S sequences of `tiles` rows). Direct convolution: row_stride = stride, piece_stride =
    dilation, a piece per tap. Winograd F(m, 3): the input transform at every offset, read at
    the tiles' offsets m t + 3 q."""
    tiles: int
    seq_rows: int
    row_stride: int
    piece_stride: int


@dataclass
class _Kernel:
    """The sizes and operand types one executable is made of (see executable)."""
    name: str
    M: int
    K: int
    N: int
    G: int | None
    window: Window | None
    Kc: int | None
    scaled: bool

    def __post_init__(self):
        M, K, N, G, window = self.M, self.K, self.N, self.G, self.window
        self.K4, self.NB, self.NR = K // 4, N // 16, COLS // 16
        self.P, self.Kc4 = (K // self.Kc, self.Kc // 4) if window else (1, self.K4)
        rows = f"{M // window.tiles * window.seq_rows}x{self.Kc}" if window else f"{M}x{K}"
        g = "" if G is None else f"{G}x"
        self.types = {"ta": f"{g}{rows}xi8", "tw": f"{g}{self.NB}x{self.K4}x64xi8", "tc": f"{g}{N}xi32",
                      "to": f"{g}{M}x{N}x{'f32' if self.scaled else 'i32'}"}
        self.ts = f"{g}{N}xf32"
        self.gi = "" if G is None else "%g, "  # the product's index in every access
        self.ragged = M % ROWS != 0
        self.accs = [f"%acc{r}_{j}" for r in range(ROWS) for j in range(self.NR)]
        self.acc_types = ", ".join(["vector<16xi32>"] * len(self.accs))


def executable(name: str, M: int, K: int, N: int, G: int | None = None,
               window: Window | None = None, Kc: int | None = None, scaled: bool = False) -> str:
    """`stream.executable @name` and `func.func private @name_call(A, W packed, corr) -> C`.
    With `G`: G products (A [G, ...], W [G, N/16, K/4, 64], corr [G, N], C [G, M, N]).
    With `window`: A is [(G,) S * seq_rows, Kc] read through it (K = pieces x Kc);
    otherwise A is [(G,) M, K]. With `scaled`, a fourth operand scale [(G,) N] float32 and
    C = f32(A W^T) * scale, float32 (Winograd's products scaled by position and channel)."""
    if K % 4 or N % COLS or M < 1:
        raise ValueError(f"int8 VNNI kernel: M={M} (at least 1), K={K} (a multiple of 4), N={N} (of {COLS})")
    if window is not None and (Kc is None or Kc % 4 or K % Kc or M % window.tiles):
        raise ValueError(f"int8 VNNI kernel: a window needs channels Kc={Kc} dividing K={K}, a multiple "
                         f"of 4, and whole sequences of {window and window.tiles} rows in M={M}")
    k = _Kernel(name, M, K, N, G, window, Kc, scaled)
    ts = {"ts": k.ts} if scaled else {}
    return render(
        T, "executable", name=name, tiles_m=-(-M // ROWS), tiles_n=k.NB // k.NR, groups=G or 1,
        b4=", %b4: !stream.binding" if scaled else "", Kc4=k.Kc4, P=k.P, Mlast=M - 1, **k.types,
        c_binding=4 if scaled else 3, ROWS=ROWS, NR=k.NR,
        scale_binding=render(T, "scale_binding", ts=k.ts) if scaled else "",
        window_constants=render(T, "window_constants", tiles=window.tiles, seq_rows=window.seq_rows,
                                row_stride=window.row_stride, piece_stride=window.piece_stride) if window else "",
        rows=[_row(k, r) for r in range(ROWS)],
        columns=[render(T, "column", j=j) for j in range(k.NR)],
        products=_products(k), outputs=_outputs(k),
        call=render(T, "call_scaled" if scaled else "call", name=name, **k.types, **ts))


def _row(k: _Kernel, r: int) -> str:
    """Row r of the tile: its index %m{r} (the last row again past a ragged end) and, read
    through a window, its first physical row %p{r}."""
    out = [render(T, "row_ragged" if k.ragged else "row", r=r)]
    if k.window:
        out.append(render(T, "row_window", r=r))
    return "\n".join(out)


def _products(k: _Kernel) -> str:
    """The loop over K, 4 k an iteration (read through a window: over the pieces, then
    their channels), ROWS x COLS/16 accumulators."""
    n, types = len(k.accs), k.acc_types
    if not k.window:
        step = _step(k, "%m{r}", k.accs)
        return render(T, "loop", n=n, inits=", ".join(f"{x} = %z" for x in k.accs), types=types, step=step)
    step = _step(k, "%row{r}", [f"{x}_" for x in k.accs])
    return render(T, "loop_window", n=n, inits=", ".join(f"{x} = %z" for x in k.accs), types=types,
                  piece_rows=[render(T, "piece_row", r=r) for r in range(ROWS)],
                  inner_inits=", ".join(f"{x}_ = {x}" for x in k.accs), step=step,
                  inner=", ".join(f"%in#{i}" for i in range(n)))


def _step(k: _Kernel, row: str, accs: list) -> str:
    """One iteration: W's column blocks at %k, then per row 4 bytes of A (at `row`, + 128
    each: unsigned) times each block into `accs`."""
    weights = [render(T, "weights", j=j, gi=k.gi, tw=k.types["tw"]) for j in range(k.NR)]
    rows = []
    for r in range(ROWS):
        dots = [render(T, "dot", r=r, j=j, intrinsic=INTRINSIC, acc=accs[r * k.NR + j]) for j in range(k.NR)]
        rows.append(render(T, "a_row", r=r, gi=k.gi, row=row.format(r=r), ta=k.types["ta"], dots=dots))
    outs = ", ".join(f"%n{r}_{j}" for r in range(ROWS) for j in range(k.NR))
    return render(T, "step", weights=weights, rows=rows, outs=outs, types=k.acc_types)


def _outputs(k: _Kernel) -> list[str]:
    """C's tiles: the sums plus corr (scaled), stored (only the real rows of a ragged
    tile)."""
    out = []
    for i, (r, j) in enumerate((r, j) for r in range(ROWS) for j in range(k.NR)):
        rj = f"{r}_{j}"
        scale, value, vt = "", f"%o{rj}", "vector<16xi32>"
        if k.scaled:
            scale, value, vt = render(T, "scale", rj=rj, gi=k.gi, ts=k.ts), f"%os{rj}", "vector<16xf32>"
        store = render(T, "store", value=value, gi=k.gi, r=r, rj=rj, to=k.types["to"], type=vt)
        if k.ragged and r:
            store = render(T, "store_ragged", rj=rj, r=r, store=store)
        out.append(render(T, "output", rj=rj, j=j, gi=k.gi, tc=k.types["tc"], i=i, scale=scale, store=store))
    return out
