// RUN: %wispy-opt %s -p 'builtin.module(wispy-int8-vnni)' --explain 2>%t.remarks | %filecheck %s
// RUN: %filecheck %s --check-prefix=REMARK < %t.remarks
// RUN: sed -e 's/16,8\],si8/12,8],si8/g' -e 's/16,32\],si32/12,32],si32/g' %s | not %wispy-opt -p 'builtin.module(wispy-int8-vnni)' 2>&1 | %filecheck %s --check-prefix=RAGGED

// REMARK: remark: wispy-int8-vnni: {{.+}}: int8 product 16x8 @ 8x32 on wispy's VNNI kernel

// An int8 product as the export emits it on a host with AVX-512 VNNI: activations A
// [16, 8] int8, the weight packed [32/16, 8/4, 64] int8, the correction [32] int32. The op
// becomes a call of a function that dispatches the hand-written kernel: one workgroup per
// 8 rows and 32 columns (grid 1 x 2), per 4 k one 4-byte broadcast of each row of A, made
// unsigned by an xor with 0x80808080, and one vpdpbusd per row and 16 columns.
// CHECK-LABEL: func.func @product
// CHECK-NOT: torch.operator
// CHECK: %[[A:.+]] = torch_c.to_builtin_tensor %arg0 : !torch.vtensor<[16,8],si8> -> tensor<16x8xi8>
// CHECK: %[[W:.+]] = torch_c.to_builtin_tensor %arg1 : !torch.vtensor<[2,2,64],si8> -> tensor<2x2x64xi8>
// CHECK: %[[R:.+]] = torch_c.to_builtin_tensor %arg2 : !torch.vtensor<[32],si32> -> tensor<32xi32>
// CHECK: %[[C:.+]] = call @wispy_int8_vnni_16x8x32_call(%[[A]], %[[W]], %[[R]]) : (tensor<16x8xi8>, tensor<2x2x64xi8>, tensor<32xi32>) -> tensor<16x32xi32>
// CHECK: torch_c.from_builtin_tensor %[[C]] : tensor<16x32xi32> -> !torch.vtensor<[16,32],si32>
// CHECK: stream.executable private @wispy_int8_vnni_16x8x32
// CHECK: stream.return %{{.+}}, %{{.+}}, %{{.+}} : index, index, index
// CHECK: scf.for %{{.+}} iter_args(
// CHECK: vector.load %{{.+}} : memref<16x8xi8>, vector<4xi8>
// CHECK: arith.xori %{{.+}}, %{{.+}} : i32
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// CHECK: func.func private @wispy_int8_vnni_16x8x32_call
// CHECK: flow.dispatch @wispy_int8_vnni_16x8x32::@wispy_int8_vnni_16x8x32
//
// Rows that are not whole tiles of 8 (the export pads them) are refused, with the op's place.
// RAGGED: wispy.int8_matmul_vnni: 12 rows and 32 columns are not whole tiles of 8 x 32
module {
  func.func @product(%arg0: !torch.vtensor<[16,8],si8>, %arg1: !torch.vtensor<[2,2,64],si8>, %arg2: !torch.vtensor<[32],si32>) -> !torch.vtensor<[16,32],si32> {
    %0 = torch.operator "torch.wispy.int8_matmul_vnni"(%arg0, %arg1, %arg2) : (!torch.vtensor<[16,8],si8>, !torch.vtensor<[2,2,64],si8>, !torch.vtensor<[32],si32>) -> !torch.vtensor<[16,32],si32>
    return %0 : !torch.vtensor<[16,32],si32>
  }
}
