"""An int8 matmul for x86 CPUs with AVX-512 VNNI, as a hand-written dispatch (MLIR text):
C[M, N] (int32) = A[M, K] (int8) @ W[N, K]^T (int8), exact.

`vpdpbusd` multiplies unsigned by signed bytes, four pairs into each int32 lane: 64
multiply-adds an instruction, where IREE's own int8 matmuls widen to 16 bits first
(`vpdpwssd`, 32). So the kernel reads A as unsigned, a + 128 (one xor of each 4-byte word),
and adds corr[n] = -128 * sum_k W[n, k]: (a + 128) w + corr = a w.

Operands: A [M, K] int8 (M a multiple of ROWS, K of 4), W packed [N/16, K/4, 64] (per 16
output columns and 4 k: 16 x 4 bytes, column-major), corr [N] int32; result C [M, N]
int32. One workgroup per ROWS rows and COLS columns: ROWS x COLS/16 accumulators of 16
int32, per 4 k one broadcast of 4 bytes of A per row and one `vpdpbusd` per row and
16-column block (`llvm.call_intrinsic`; tests/compiler/test_toolchain_intrinsics.py). The
workgroups walk the rows first, so consecutive ones reuse a column block's weights from
cache (Winograd's 56x2752 @ 2752x2016: 0.79 ms, 391 GMAC/s, one thread).
"""
from __future__ import annotations

ROWS, COLS = 8, 32
INTRINSIC = "llvm.x86.avx512.vpdpbusd.512"


def executable(name: str, M: int, K: int, N: int) -> str:
    """`stream.executable @name` and `func.func private @name_call(A, W packed, corr) -> C`."""
    if M % ROWS or K % 4 or N % COLS:
        raise ValueError(f"int8 VNNI kernel: M={M} (multiple of {ROWS}), K={K} (of 4), N={N} (of {COLS})")
    K4, NB, NR = K // 4, N // 16, COLS // 16
    ta, tw, tc, to = f"{M}x{K}xi8", f"{NB}x{K4}x64xi8", f"{N}xi32", f"{M}x{N}xi32"
    L = [f"""stream.executable private @{name} {{
  stream.executable.export public @{name} workgroups() -> (index, index, index) {{
    %x = arith.constant {M // ROWS} : index
    %y = arith.constant {NB // NR} : index
    %c1 = arith.constant 1 : index
    stream.return %x, %y, %c1 : index, index, index
  }}
  builtin.module {{
    func.func @{name}(%b0: !stream.binding, %b1: !stream.binding, %b2: !stream.binding, %b3: !stream.binding) {{
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c16 = arith.constant 16 : index
      %cK4 = arith.constant {K4} : index
      %A = stream.binding.subspan %b0[%c0] : !stream.binding -> memref<{ta}>
      %W = stream.binding.subspan %b1[%c0] : !stream.binding -> memref<{tw}>
      %R = stream.binding.subspan %b2[%c0] : !stream.binding -> memref<{tc}>
      %C = stream.binding.subspan %b3[%c0] : !stream.binding -> memref<{to}>
      %wm = stream.dispatch.workgroup.id[0] : index
      %wn = stream.dispatch.workgroup.id[1] : index
      %cR = arith.constant {ROWS} : index
      %cN = arith.constant {NR} : index
      %mbase = arith.muli %wm, %cR : index
      %nbase = arith.muli %wn, %cN : index
      %flip = arith.constant -2139062144 : i32
      %z = arith.constant dense<0> : vector<16xi32>"""]
    a = L.append
    for r in range(ROWS):
        a(f"      %cr{r} = arith.constant {r} : index\n      %m{r} = arith.addi %mbase, %cr{r} : index")
    for j in range(NR):
        a(f"      %cj{j} = arith.constant {j} : index\n      %nb{j} = arith.addi %nbase, %cj{j} : index")
    accs = [f"%acc{r}_{j}" for r in range(ROWS) for j in range(NR)]
    types = ", ".join(["vector<16xi32>"] * len(accs))
    a(f"      %res:{len(accs)} = scf.for %k = %c0 to %cK4 step %c1 iter_args("
      + ", ".join(f"{x} = %z" for x in accs) + f") -> ({types}) {{")
    a("        %kb = arith.muli %k, %c4 : index")
    for j in range(NR):
        a(f"        %wv{j} = vector.load %W[%nb{j}, %k, %c0] : memref<{tw}>, vector<64xi8>")
    outs = []
    for r in range(ROWS):
        a(f"        %a4{r} = vector.load %A[%m{r}, %kb] : memref<{ta}>, vector<4xi8>")
        a(f"        %aw{r} = vector.bitcast %a4{r} : vector<4xi8> to vector<1xi32>")
        a(f"        %as{r} = vector.extract %aw{r}[0] : i32 from vector<1xi32>")
        a(f"        %au{r} = arith.xori %as{r}, %flip : i32")  # + 128 in each byte: unsigned
        a(f"        %ab{r} = vector.broadcast %au{r} : i32 to vector<16xi32>")
        a(f"        %a8{r} = vector.bitcast %ab{r} : vector<16xi32> to vector<64xi8>")
        for j in range(NR):
            a(f'        %n{r}_{j} = llvm.call_intrinsic "{INTRINSIC}"(%acc{r}_{j}, %a8{r}, %wv{j})'
              " : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>")
            outs.append(f"%n{r}_{j}")
    a(f"        scf.yield {', '.join(outs)} : {types}")
    a("      }")
    i = 0
    for r in range(ROWS):
        for j in range(NR):
            a(f"      %col{r}_{j} = arith.muli %nb{j}, %c16 : index")
            a(f"      %cv{r}_{j} = vector.load %R[%col{r}_{j}] : memref<{tc}>, vector<16xi32>")
            a(f"      %o{r}_{j} = arith.addi %res#{i}, %cv{r}_{j} : vector<16xi32>")
            a(f"      vector.store %o{r}_{j}, %C[%m{r}, %col{r}_{j}] : memref<{to}>, vector<16xi32>")
            i += 1
    a("""      return
    }
  }
}""")
    a(f"""func.func private @{name}_call(%a: tensor<{ta}>, %w: tensor<{tw}>, %r: tensor<{tc}>) -> tensor<{to}> {{
  %0 = flow.dispatch @{name}::@{name}(%a, %w, %r) : (tensor<{ta}>, tensor<{tw}>, tensor<{tc}>) -> tensor<{to}>
  return %0 : tensor<{to}>
}}""")
    return "\n".join(L)
