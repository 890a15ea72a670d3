"""The dispatch's operands: their types in binding order (one worker, or the parts of
several), and the kernel function's bindings, index constants and subspans."""
from __future__ import annotations

from wispy.kernels.recurrent.shape import gates, results_of
from wispy.kernels.templates import render


def state_and_results(T: int, B: int, H: int, cell: str) -> tuple:
    """The initial state operands (h0, and c0 for an LSTM) and the results (hs, and cs for
    an LSTM)."""
    n = results_of(cell)
    return [f"{B}x{H}xf32"] * n, [f"{T}x{B}x{H}xf32"] * n


def _bucket_types(bk) -> list[str]:
    """values, rows, cols of a packed W_hh bucket."""
    nb, ng, c, g, lanes = bk.values.shape
    return [f"{nb}x{ng}x{c}x{g}x{lanes}xf32", f"{nb}x{ng * g * lanes}xi32", f"{nb}x{c}xi32"]


def types_one_worker(T: int, B: int, H: int, proj: list, buckets: list, tl: int, cell: str = "gru") -> list[str]:
    """Shapes of the dispatch's operands in binding order, the results last: gi [T,B,G*H]
    (or, per projection bucket, prod [nb,T*B,r] and prow [nb,r]), h0 (and an LSTM's c0),
    init, then values, rows, cols per W_hh bucket; hs (and an LSTM's cs)."""
    state, results = state_and_results(T, B, H, cell)
    out = [f"{T}x{B}x{gates(cell) * H}xf32"] if proj is None else \
        [t for nb, r in proj for t in (f"{nb}x{T * B}x{r}xf32", f"{nb}x{r}xi32")]
    out += state + [f"{4 * H + tl}xf32"]
    for bk in buckets:
        out += _bucket_types(bk)
    return out + results


def types_parts(T: int, B: int, H: int, proj, plans: list, tl: int, cell: str = "gru") -> list[str]:
    """Operands of the several-worker dispatch, the results last: gi [T,B,G*H] (or prod
    [nb,T*B,r] per projection bucket), per part its projection rows (pidx, prow), h0 (and
    an LSTM's c0), init, per part its W_hh buckets (values, rows, cols); hs (and cs)."""
    state, results = state_and_results(T, B, H, cell)
    out = [f"{T}x{B}x{gates(cell) * H}xf32"] if proj is None else [f"{nb}x{T * B}x{r}xf32" for nb, r in proj]
    for pl in plans:
        for _j, nb, rk, _i, _r in pl.proj:
            out += [f"{nb}x{rk}xi32", f"{nb}x{rk}xi32"]
    out += state + [f"{4 * H + tl}xf32"]
    for pl in plans:
        for bk in pl.buckets:
            out += _bucket_types(bk)
    return out + results


def bindings(n: int) -> str:
    """The kernel function's arguments: n stream bindings."""
    return ", ".join(f"%b{i}: !stream.binding" for i in range(n))


def index_constants(n: int) -> list[str]:
    """%c0 ... %c{n-1}, index constants."""
    return [render("recurrent.mlir", "index", i=i) for i in range(n)]


def subspans(mems: list) -> list[str]:
    """%m{i}: binding i as a memref of type mems[i]."""
    return [render("recurrent.mlir", "subspan", i=i, type=mt) for i, mt in enumerate(mems)]
