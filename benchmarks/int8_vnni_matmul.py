"""An int8 matmul written by hand with AVX-512 VNNI's unsigned-by-signed dot product
(`vpdpbusd`, 64 multiply-adds an instruction) against IREE's own int8 matmul (data tiled,
`vpdpwssd`: 32), same shapes, same runtime, interleaved. A prototype for the quantized
convolutions' products (README, "Quantized Winograd Conv1D"); not used by compile_model yet.

    .venv/bin/python benchmarks/int8_vnni_matmul.py [--shape 512,1024,2048] [--rounds 5]

C[M, N] = A[M, K] @ B[K, N], A and B int8, C int32, exact. The kernel reads A as unsigned
(a + 128: one xor of each 4-byte word) and adds -128 * sum_k B[k, n] per column, so C is
the signed product; B is packed once, as a constant weight would be at compile time:
[N/16, K/4, 16 columns, 4 k]. One workgroup per 8 rows and 32 columns: 16 accumulators of
16 int32, per 4 k one broadcast of 4 bytes of A per row and one `vpdpbusd` per row and
column block. IREE's build gets B as an input and packs it per call; to leave that out, the
comparison also times IREE with B a constant.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from wispy.compiler.targets import Target

MR, NR = 8, 2  # rows and 16-column blocks per workgroup


def kernel_mlir(M: int, K: int, N: int) -> str:
    K4, NB = K // 4, N // 16
    L = [f"""stream.executable private @g {{
  stream.executable.export public @g workgroups() -> (index, index, index) {{
    %x = arith.constant {NB // NR} : index
    %y = arith.constant {M // MR} : index
    %c1 = arith.constant 1 : index
    stream.return %x, %y, %c1 : index, index, index
  }}
  builtin.module {{
    func.func @g(%b0: !stream.binding, %b1: !stream.binding, %b2: !stream.binding, %b3: !stream.binding) {{
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c16 = arith.constant 16 : index
      %cK4 = arith.constant {K4} : index
      %A = stream.binding.subspan %b0[%c0] : !stream.binding -> memref<{M}x{K4}xi32>
      %B = stream.binding.subspan %b1[%c0] : !stream.binding -> memref<{NB}x{K4}x64xi8>
      %R = stream.binding.subspan %b2[%c0] : !stream.binding -> memref<{N}xi32>
      %C = stream.binding.subspan %b3[%c0] : !stream.binding -> memref<{M}x{N}xi32>
      %wn = stream.dispatch.workgroup.id[0] : index
      %wm = stream.dispatch.workgroup.id[1] : index
      %cMR = arith.constant {MR} : index
      %cNR = arith.constant {NR} : index
      %mbase = arith.muli %wm, %cMR : index
      %nbase = arith.muli %wn, %cNR : index
      %flip = arith.constant -2139062144 : i32
      %z = arith.constant dense<0> : vector<16xi32>"""]
    a = L.append
    for r in range(MR):
        a(f"      %cr{r} = arith.constant {r} : index\n      %m{r} = arith.addi %mbase, %cr{r} : index")
    for j in range(NR):
        a(f"      %cj{j} = arith.constant {j} : index\n      %nb{j} = arith.addi %nbase, %cj{j} : index")
    accs = [f"%acc{r}_{j}" for r in range(MR) for j in range(NR)]
    types = ", ".join(["vector<16xi32>"] * len(accs))
    a(f"      %res:{len(accs)} = scf.for %k = %c0 to %cK4 step %c1 iter_args("
      + ", ".join(f"{x} = %z" for x in accs) + f") -> ({types}) {{")
    for j in range(NR):
        a(f"        %bv{j} = vector.load %B[%nb{j}, %k, %c0] : memref<{NB}x{K4}x64xi8>, vector<64xi8>")
    outs = []
    for r in range(MR):
        a(f"        %a{r} = memref.load %A[%m{r}, %k] : memref<{M}x{K4}xi32>")
        a(f"        %au{r} = arith.xori %a{r}, %flip : i32")  # + 128 in each byte: unsigned
        a(f"        %ab{r} = vector.broadcast %au{r} : i32 to vector<16xi32>")
        a(f"        %a8{r} = vector.bitcast %ab{r} : vector<16xi32> to vector<64xi8>")
        for j in range(NR):
            a(f'        %n{r}_{j} = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%acc{r}_{j}, %a8{r}, %bv{j})'
              " : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>")
            outs.append(f"%n{r}_{j}")
    a(f"        scf.yield {', '.join(outs)} : {types}")
    a("      }")
    i = 0
    for r in range(MR):
        for j in range(NR):
            a(f"      %col{r}_{j} = arith.muli %nb{j}, %c16 : index")
            a(f"      %cv{r}_{j} = vector.load %R[%col{r}_{j}] : memref<{N}xi32>, vector<16xi32>")
            a(f"      %o{r}_{j} = arith.addi %res#{i}, %cv{r}_{j} : vector<16xi32>")
            a(f"      vector.store %o{r}_{j}, %C[%m{r}, %col{r}_{j}] : memref<{M}x{N}xi32>, vector<16xi32>")
            i += 1
    a("""      return
    }
  }
}""")
    a(f"""func.func @main(%a: tensor<{M}x{K4}xi32>, %b: tensor<{NB}x{K4}x64xi8>, %r: tensor<{N}xi32>) -> tensor<{M}x{N}xi32> {{
  %0 = flow.dispatch @g::@g(%a, %b, %r) : (tensor<{M}x{K4}xi32>, tensor<{NB}x{K4}x64xi8>, tensor<{N}xi32>) -> tensor<{M}x{N}xi32>
  return %0 : tensor<{M}x{N}xi32>
}}""")
    return "\n".join(L)


def iree_mlir(M: int, K: int, N: int, b_const=None) -> str:
    if b_const is None:
        head = f"func.func @main(%a: tensor<{M}x{K}xi8>, %b: tensor<{K}x{N}xi8>) -> tensor<{M}x{N}xi32> {{"
        bdef = ""
    else:
        head = f"func.func @main(%a: tensor<{M}x{K}xi8>) -> tensor<{M}x{N}xi32> {{"
        hexs = b_const.tobytes().hex().upper()
        bdef = f'  %b = arith.constant dense<"0x{hexs}"> : tensor<{K}x{N}xi8>\n'
    return f"""{head}
{bdef}  %c0 = arith.constant 0 : i32
  %e = tensor.empty() : tensor<{M}x{N}xi32>
  %z = linalg.fill ins(%c0 : i32) outs(%e : tensor<{M}x{N}xi32>) -> tensor<{M}x{N}xi32>
  %r = linalg.matmul ins(%a, %b : tensor<{M}x{K}xi8>, tensor<{K}x{N}xi8>) outs(%z : tensor<{M}x{N}xi32>) -> tensor<{M}x{N}xi32>
  return %r : tensor<{M}x{N}xi32>
}}"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="512,1024,2048", help="M,K,N (M % 8, K % 4, N % 32 == 0)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=10)
    a = ap.parse_args()
    M, K, N = (int(v) for v in a.shape.split(","))
    if M % MR or K % 4 or N % (16 * NR):
        raise SystemExit(f"--shape: M must be a multiple of {MR}, K of 4, N of {16 * NR}")
    if "avx512_vnni" not in open("/proc/cpuinfo").read():
        raise SystemExit("this host has no AVX-512 VNNI")
    import iree.compiler as ireec
    import iree.runtime as rt

    rng = np.random.default_rng(0)
    A = rng.integers(-128, 128, (M, K)).astype(np.int8)
    Bm = rng.integers(-128, 128, (K, N)).astype(np.int8)
    want = A.astype(np.int64) @ Bm.astype(np.int64)
    packed = np.ascontiguousarray(Bm.reshape(K // 4, 4, N // 16, 16).transpose(2, 0, 3, 1)).reshape(N // 16, K // 4, 64)
    corr = (-128 * Bm.astype(np.int64).sum(0)).astype(np.int32)
    flags = Target.parse("host").iree_flags()
    cfg = rt.Config("local-sync")

    def load(text):
        vmfb = ireec.compile_str(text, target_backends=[], extra_args=flags)
        ctx = rt.SystemContext(vm_modules=[rt.VmModule.copy_buffer(cfg.vm_instance, vmfb)], config=cfg)
        return ctx, ctx.modules.module["main"]

    builds = {
        "vpdpbusd kernel (B packed)": (load(kernel_mlir(M, K, N)), (A.view(np.int32).reshape(M, K // 4), packed, corr)),
        "IREE int8 matmul (B input)": (load(iree_mlir(M, K, N)), (A, Bm)),
        "IREE int8 matmul (B constant)": (load(iree_mlir(M, K, N, Bm)), (A,)),
    }
    for name, ((_ctx, f), args) in builds.items():
        got = np.asarray(f(*args).to_host())
        if not np.array_equal(got, want):
            raise SystemExit(f"{name}: wrong products")
    times = {k: [] for k in builds}
    for _ in range(a.rounds):
        for name, ((_ctx, f), args) in builds.items():
            f(*args)
            for _ in range(a.calls):
                t = time.perf_counter()
                f(*args)
                times[name].append(time.perf_counter() - t)
    print(f"int8 matmul {M}x{K} @ {K}x{N}, one thread (local-sync), all exact; median of "
          f"{a.rounds} rounds x {a.calls} calls:")
    for name, v in times.items():
        ms = float(np.median(v)) * 1e3
        print(f"  {name:32s} {ms:7.2f} ms  {M * K * N / ms / 1e6:6.0f} GMAC/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
