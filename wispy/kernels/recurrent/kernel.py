"""The dispatch: `stream.executable` around the one-worker or several-worker kernel, and
the function that dispatches it on tensors."""
from __future__ import annotations

from wispy.kernels.recurrent import one_worker, workers
from wispy.kernels.recurrent.operands import types_one_worker, types_parts
from wispy.kernels.recurrent.shape import CELLS, KernelShape, results_of
from wispy.kernels.templates import render

R = "recurrent.mlir"


def executable(name: str, T: int, B: int, H: int, proj, buckets: list, shape: KernelShape,
               cell: str = "gru") -> str:
    """`stream.executable @name` whose export `@name` runs the recurrence of B sequences
    (one workgroup each), and `func.func private @name_call` that dispatches it on
    tensors (the operands of types_one_worker, or of types_parts with several workers,
    whose `buckets` are then the parts of plan_parts) -> hs [T,B,H] (an LSTM: hs, cs
    [T,B,H]). `proj`: [(nb, r)] of the projection's buckets, or None when the kernel reads
    gi."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, not {cell!r}")
    several = shape.workers > 1
    types = (types_parts if several else types_one_worker)(T, B, H, proj, buckets, shape.tl, cell)
    body = (workers if several else one_worker).kernel(name, T, B, H, proj, buckets, shape, types, cell)
    nres = results_of(cell)
    ops, res = types[:-nres], types[-nres:]
    args = ", ".join(f"%a{i}: tensor<{t}>" for i, t in enumerate(ops))
    names = ", ".join(f"%a{i}" for i in range(len(ops)))
    ttypes = ", ".join(f"tensor<{t}>" for t in ops)
    rtypes = ", ".join(f"tensor<{t}>" for t in res)
    ret = rtypes if nres == 1 else f"({rtypes})"
    rets = "%0" if nres == 1 and not several else ", ".join(f"%0#{i}" for i in range(nres))
    if several:
        call = render(R, "call_workers", words=workers.counter_words(T, B), count=nres + 1, name=name,
                      names=names, types=ttypes, rtypes=rtypes, rets=rets)
    else:
        call = render(R, "call", results="%0" if nres == 1 else f"%0:{nres}", name=name, names=names,
                      types=ttypes, ret=ret, rets=rets, rtypes=rtypes)
    return render(R, "executable", name=name, B=B, workers=shape.workers,
                  grid="%cw, %b, %c1" if several else "%b, %c1, %c1", body=body, args=args, ret=ret,
                  call=call) + "\n"
