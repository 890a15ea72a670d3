"""What a hand-written dispatch may use on this toolchain (IREE 3.13): an LLVM target
intrinsic called through `llvm.call_intrinsic` inside a `stream.executable`, here AVX-512
VNNI's unsigned-by-signed byte dot product (`vpdpbusd`, 64 multiply-adds an instruction,
twice what IREE's own int8 matmuls use on x86; README, "Quantized Winograd Conv1D").
An int8 kernel built on it relies on this staying true."""
import numpy as np
import pytest

from wispy.targets import Target, host_cpu_flags

DISPATCH = """
stream.executable private @dp {
  stream.executable.export public @dp workgroups() -> (index, index, index) {
    %c1 = arith.constant 1 : index
    stream.return %c1, %c1, %c1 : index, index, index
  }
  builtin.module {
    func.func @dp(%b0: !stream.binding, %b1: !stream.binding, %b2: !stream.binding, %b3: !stream.binding) {
      %c0 = arith.constant 0 : index
      %a = stream.binding.subspan %b0[%c0] : !stream.binding -> memref<64xi8>
      %b = stream.binding.subspan %b1[%c0] : !stream.binding -> memref<64xi8>
      %c = stream.binding.subspan %b2[%c0] : !stream.binding -> memref<16xi32>
      %o = stream.binding.subspan %b3[%c0] : !stream.binding -> memref<16xi32>
      %va = vector.load %a[%c0] : memref<64xi8>, vector<64xi8>
      %vb = vector.load %b[%c0] : memref<64xi8>, vector<64xi8>
      %vc = vector.load %c[%c0] : memref<16xi32>, vector<16xi32>
      %r = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%vc, %va, %vb)
          : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
      vector.store %r, %o[%c0] : memref<16xi32>, vector<16xi32>
      return
    }
  }
}
func.func @main(%a: tensor<64xi8>, %b: tensor<64xi8>, %c: tensor<16xi32>) -> tensor<16xi32> {
  %0 = flow.dispatch @dp::@dp(%a, %b, %c) : (tensor<64xi8>, tensor<64xi8>, tensor<16xi32>) -> tensor<16xi32>
  return %0 : tensor<16xi32>
}
"""


def _host_has(flag: str) -> bool:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return False
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return flag in line.split()


@pytest.mark.skipif(not _host_has("avx512_vnni"), reason="this host has no AVX-512 VNNI")
def test_a_dispatch_calls_vpdpbusd_through_llvm_call_intrinsic():
    import iree.compiler as ireec
    import iree.runtime as rt

    assert any("+avx512vnni" in f for f in host_cpu_flags())
    vmfb = ireec.compile_str(DISPATCH, target_backends=[], extra_args=Target.parse("host").iree_flags())
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, 64, dtype=np.int64).astype(np.uint8)   # unsigned
    b = rng.integers(-128, 128, 64, dtype=np.int64).astype(np.int8)  # signed
    c = rng.integers(-1000, 1000, 16, dtype=np.int64).astype(np.int32)
    cfg = rt.Config("local-sync")
    ctx = rt.SystemContext(vm_modules=[rt.VmModule.copy_buffer(cfg.vm_instance, vmfb)], config=cfg)
    got = ctx.modules.module["main"](a.view(np.int8), b, c).to_host()
    want = c + (a.astype(np.int32) * b.astype(np.int32)).reshape(16, 4).sum(1)
    np.testing.assert_array_equal(got, want)
