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
cache (Winograd's 56x2752 @ 2752x2016: 0.79 ms, 391 GMAC/s, one thread).

Two extensions, both for convolutions:
- G products in one dispatch (a leading dimension on every operand): a Winograd layer's
  positions, one dispatch where there were G.
- A read through a `Window`: A's rows are taken straight from the convolution's input rows
  (im2col without its copy; for Winograd, the tiles of every 3-tap piece, which overlap).
A ragged last tile of rows is handled in the kernel (no padded copy of A, no sliced copy of C).
"""
from __future__ import annotations

from dataclasses import dataclass

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
    K4, NB, NR = K // 4, N // 16, COLS // 16
    P, Kc4 = (K // Kc, Kc // 4) if window else (1, K4)
    rows = f"{M // window.tiles * window.seq_rows}x{Kc}" if window else f"{M}x{K}"
    g = "" if G is None else f"{G}x"
    ta, tw, tc, to = f"{g}{rows}xi8", f"{g}{NB}x{K4}x64xi8", f"{g}{N}xi32", f"{g}{M}x{N}x{'f32' if scaled else 'i32'}"
    ts = f"{g}{N}xf32"
    gi = "" if G is None else "%g, "  # the product's index in every access
    L = [f"""stream.executable private @{name} {{
  stream.executable.export public @{name} workgroups() -> (index, index, index) {{
    %x = arith.constant {-(-M // ROWS)} : index
    %y = arith.constant {NB // NR} : index
    %z = arith.constant {G or 1} : index
    stream.return %x, %y, %z : index, index, index
  }}
  builtin.module {{
    func.func @{name}(%b0: !stream.binding, %b1: !stream.binding, %b2: !stream.binding, %b3: !stream.binding{', %b4: !stream.binding' if scaled else ''}) {{
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c16 = arith.constant 16 : index
      %cKc4 = arith.constant {Kc4} : index
      %cP = arith.constant {P} : index
      %cMlast = arith.constant {M - 1} : index
      %A = stream.binding.subspan %b0[%c0] : !stream.binding -> memref<{ta}>
      %W = stream.binding.subspan %b1[%c0] : !stream.binding -> memref<{tw}>
      %R = stream.binding.subspan %b2[%c0] : !stream.binding -> memref<{tc}>
      %C = stream.binding.subspan %b{4 if scaled else 3}[%c0] : !stream.binding -> memref<{to}>
      %wm = stream.dispatch.workgroup.id[0] : index
      %wn = stream.dispatch.workgroup.id[1] : index
      %g = stream.dispatch.workgroup.id[2] : index
      %cR = arith.constant {ROWS} : index
      %cN = arith.constant {NR} : index
      %mbase = arith.muli %wm, %cR : index
      %nbase = arith.muli %wn, %cN : index
      %flip = arith.constant -2139062144 : i32
      %z = arith.constant dense<0> : vector<16xi32>"""]
    a = L.append
    if scaled:
        a(f"      %S = stream.binding.subspan %b3[%c0] : !stream.binding -> memref<{ts}>")
    if window:
        a(f"""      %cTiles = arith.constant {window.tiles} : index
      %cSeq = arith.constant {window.seq_rows} : index
      %cRowStride = arith.constant {window.row_stride} : index
      %cPieceStride = arith.constant {window.piece_stride} : index""")
    # A ragged last tile of rows reads the last row again for its missing rows and stores
    # only the real ones.
    ragged = M % ROWS != 0
    for r in range(ROWS):
        a(f"      %cr{r} = arith.constant {r} : index")
        if ragged:
            a(f"      %mr{r} = arith.addi %mbase, %cr{r} : index\n"
              f"      %m{r} = arith.minui %mr{r}, %cMlast : index")
        else:
            a(f"      %m{r} = arith.addi %mbase, %cr{r} : index")
        if window:  # the row's first physical row: s * seq_rows + row_stride * t
            a(f"      %s{r} = arith.divui %m{r}, %cTiles : index\n"
              f"      %t{r} = arith.remui %m{r}, %cTiles : index\n"
              f"      %sb{r} = arith.muli %s{r}, %cSeq : index\n"
              f"      %tb{r} = arith.muli %t{r}, %cRowStride : index\n"
              f"      %p{r} = arith.addi %sb{r}, %tb{r} : index")
    for j in range(NR):
        a(f"      %cj{j} = arith.constant {j} : index\n      %nb{j} = arith.addi %nbase, %cj{j} : index")
    accs = [f"%acc{r}_{j}" for r in range(ROWS) for j in range(NR)]
    types = ", ".join(["vector<16xi32>"] * len(accs))
    init = ", ".join(f"{x} = %z" for x in accs)
    if window:  # per piece its rows, then its channels as the inner loop
        a(f"      %res:{len(accs)} = scf.for %q = %c0 to %cP step %c1 iter_args({init}) -> ({types}) {{")
        a("        %qo = arith.muli %q, %cPieceStride : index\n        %qk = arith.muli %q, %cKc4 : index")
        for r in range(ROWS):
            a(f"        %row{r} = arith.addi %p{r}, %qo : index")
        a(f"        %in:{len(accs)} = scf.for %c = %c0 to %cKc4 step %c1 iter_args("
          + ", ".join(f"{x}_ = {x}" for x in accs) + f") -> ({types}) {{")
        a("        %k = arith.addi %qk, %c : index\n        %kb = arith.muli %c, %c4 : index")
        row, acc = "%row{r}", "{x}_"
    else:
        a(f"      %res:{len(accs)} = scf.for %k = %c0 to %cKc4 step %c1 iter_args({init}) -> ({types}) {{")
        a("        %kb = arith.muli %k, %c4 : index")
        row, acc = "%m{r}", "{x}"
    for j in range(NR):
        a(f"        %wv{j} = vector.load %W[{gi}%nb{j}, %k, %c0] : memref<{tw}>, vector<64xi8>")
    outs = []
    for r in range(ROWS):
        a(f"        %a4{r} = vector.load %A[{gi}{row.format(r=r)}, %kb] : memref<{ta}>, vector<4xi8>")
        a(f"        %aw{r} = vector.bitcast %a4{r} : vector<4xi8> to vector<1xi32>")
        a(f"        %as{r} = vector.extract %aw{r}[0] : i32 from vector<1xi32>")
        a(f"        %au{r} = arith.xori %as{r}, %flip : i32")  # + 128 in each byte: unsigned
        a(f"        %ab{r} = vector.broadcast %au{r} : i32 to vector<16xi32>")
        a(f"        %a8{r} = vector.bitcast %ab{r} : vector<16xi32> to vector<64xi8>")
        for j in range(NR):
            a(f'        %n{r}_{j} = llvm.call_intrinsic "{INTRINSIC}"({acc.format(x=f"%acc{r}_{j}")}, %a8{r}, %wv{j})'
              " : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>")
            outs.append(f"%n{r}_{j}")
    a(f"        scf.yield {', '.join(outs)} : {types}")
    if window:
        a("        }")
        a(f"        scf.yield {', '.join(f'%in#{i}' for i in range(len(accs)))} : {types}")
    a("      }")
    i = 0
    for r in range(ROWS):
        for j in range(NR):
            a(f"      %col{r}_{j} = arith.muli %nb{j}, %c16 : index")
            a(f"      %cv{r}_{j} = vector.load %R[{gi}%col{r}_{j}] : memref<{tc}>, vector<16xi32>")
            a(f"      %o{r}_{j} = arith.addi %res#{i}, %cv{r}_{j} : vector<16xi32>")
            val, vt = f"%o{r}_{j}", "vector<16xi32>"
            if scaled:  # f32(product) * scale[n], as the reference rounds it
                a(f"      %sv{r}_{j} = vector.load %S[{gi}%col{r}_{j}] : memref<{ts}>, vector<16xf32>\n"
                  f"      %of{r}_{j} = arith.sitofp %o{r}_{j} : vector<16xi32> to vector<16xf32>\n"
                  f"      %os{r}_{j} = arith.mulf %of{r}_{j}, %sv{r}_{j} : vector<16xf32>")
                val, vt = f"%os{r}_{j}", "vector<16xf32>"
            store = f"vector.store {val}, %C[{gi}%m{r}, %col{r}_{j}] : memref<{to}>, {vt}"
            if ragged and r:
                a(f"      %v{r}_{j} = arith.cmpi ule, %mr{r}, %cMlast : index\n"
                  f"      scf.if %v{r}_{j} {{\n        {store}\n      }}")
            else:
                a(f"      {store}")
            i += 1
    a("""      return
    }
  }
}""")
    if scaled:
        a(f"""func.func private @{name}_call(%a: tensor<{ta}>, %w: tensor<{tw}>, %r: tensor<{tc}>, %s: tensor<{ts}>) -> tensor<{to}> {{
  %0 = flow.dispatch @{name}::@{name}(%a, %w, %r, %s) : (tensor<{ta}>, tensor<{tw}>, tensor<{tc}>, tensor<{ts}>) -> tensor<{to}>
  return %0 : tensor<{to}>
}}""")
    else:
        a(f"""func.func private @{name}_call(%a: tensor<{ta}>, %w: tensor<{tw}>, %r: tensor<{tc}>) -> tensor<{to}> {{
  %0 = flow.dispatch @{name}::@{name}(%a, %w, %r) : (tensor<{ta}>, tensor<{tw}>, tensor<{tc}>) -> tensor<{to}>
  return %0 : tensor<{to}>
}}""")
    return "\n".join(L)
