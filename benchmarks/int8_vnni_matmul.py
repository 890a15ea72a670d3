"""An int8 matmul written by hand with AVX-512 VNNI's unsigned-by-signed dot product
(`vpdpbusd`, 64 multiply-adds an instruction) against IREE's own int8 matmul (data tiled,
`vpdpwssd`: 32), same shapes, same runtime, interleaved. The kernel is the one
compile_model gives quantized layers on such hosts (wispy-int8-vnni).

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

from wispy.targets import Target

from wispy.kernels import int8_vnni as int8_vnni_kernel


def kernel_mlir(M: int, K: int, N: int) -> str:
    """wispy's kernel (wispy/kernels/int8_vnni.py) behind a public entry point."""
    ta, tw, tc, to = f"{M}x{K}xi8", f"{N // 16}x{K // 4}x64xi8", f"{N}xi32", f"{M}x{N}xi32"
    return int8_vnni_kernel.executable("g", M, K, N) + f"""
func.func @main(%a: tensor<{ta}>, %w: tensor<{tw}>, %r: tensor<{tc}>) -> tensor<{to}> {{
  %0 = call @g_call(%a, %w, %r) : (tensor<{ta}>, tensor<{tw}>, tensor<{tc}>) -> tensor<{to}>
  return %0 : tensor<{to}>
}}"""


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
    R, C = int8_vnni_kernel.ROWS, int8_vnni_kernel.COLS
    if M % R or K % 4 or N % C:
        raise SystemExit(f"--shape: M must be a multiple of {R}, K of 4, N of {C}")
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
        "vpdpbusd kernel (B packed)": (load(kernel_mlir(M, K, N)), (A, packed, corr)),
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
