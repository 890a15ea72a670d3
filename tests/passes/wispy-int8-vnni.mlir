// RUN: %wispy-opt %s -p 'builtin.module(wispy-int8-vnni)' --explain 2>%t.remarks | %filecheck %s
// RUN: %filecheck %s --check-prefix=REMARK < %t.remarks
// RUN: sed -e 's/\[2,2,64\],si8/[1,2,64],si8/g' -e 's/\[32\],si32/[16],si32/g' -e 's/16,32\],si32/16,16],si32/g' %s | not %wispy-opt -p 'builtin.module(wispy-int8-vnni)' 2>&1 | %filecheck %s --check-prefix=COLUMNS
// RUN: sed -e 's/torch.constant.int 3$/torch.constant.int 7/' %s | not %wispy-opt -p 'builtin.module(wispy-int8-vnni)' 2>&1 | %filecheck %s --check-prefix=WINDOW

// REMARK: remark: wispy-int8-vnni: {{.+}}: int8 product 16x8 @ 8x32 on wispy's VNNI kernel
// REMARK: remark: wispy-int8-vnni: {{.+}}: int8 product 12x8 @ 8x32 on wispy's VNNI kernel
// REMARK: remark: wispy-int8-vnni: {{.+}}: 2 int8 products 10x24 @ 24x32 on wispy's VNNI kernel, read from the convolution's input (8 channels, 3 pieces)

// An int8 product as the export emits it on a host with AVX-512 VNNI: activations A
// [16, 8] int8, the weight packed [32/16, 8/4, 64] int8, the correction [32] int32. The op
// becomes a call of a function that dispatches the hand-written kernel: one workgroup per
// 8 rows and 32 columns (grid 2 x 1), per 4 k one 4-byte broadcast of each row of A, made
// unsigned by an xor with 0x80808080, and one vpdpbusd per row and 16 columns.
// CHECK-LABEL: func.func @product
// CHECK-NOT: torch.operator
// CHECK: %[[A:.+]] = torch_c.to_builtin_tensor %arg0 : !torch.vtensor<[16,8],si8> -> tensor<16x8xi8>
// CHECK: %[[W:.+]] = torch_c.to_builtin_tensor %arg1 : !torch.vtensor<[2,2,64],si8> -> tensor<2x2x64xi8>
// CHECK: %[[R:.+]] = torch_c.to_builtin_tensor %arg2 : !torch.vtensor<[32],si32> -> tensor<32xi32>
// CHECK: %[[C:.+]] = call @wispy_int8_vnni_16x8x32_call(%[[A]], %[[W]], %[[R]]) : (tensor<16x8xi8>, tensor<2x2x64xi8>, tensor<32xi32>) -> tensor<16x32xi32>
// CHECK: torch_c.from_builtin_tensor %[[C]] : tensor<16x32xi32> -> !torch.vtensor<[16,32],si32>
//
// Rows that are not whole tiles of 8 (12): the last tile re-reads row 11 for its missing
// rows (arith.minui) and stores only rows below 12 (scf.if); nothing is padded or sliced.
// CHECK-LABEL: func.func @ragged
// CHECK: call @wispy_int8_vnni_12x8x32_call({{.+}}) : (tensor<12x8xi8>, tensor<2x2x64xi8>, tensor<32xi32>) -> tensor<12x32xi32>
//
// A convolution's products read through a window, two of them (Winograd positions) in one
// dispatch: A is [2, 30, 8], two sequences of 15 rows of 8 channels; logical row (s, t),
// piece q reads row 15 s + 2 t + 3 q. 5 tiles per sequence: 10 rows of k = 3 x 8.
// CHECK-LABEL: func.func @window
// CHECK: call @wispy_int8_vnni_2x10x24x32_from30x8_t5_s2_p3_call({{.+}}) : (tensor<2x30x8xi8>, tensor<2x2x6x64xi8>, tensor<2x32xi32>) -> tensor<2x10x32xi32>
//
// CHECK: stream.executable private @wispy_int8_vnni_16x8x32
// CHECK: stream.return %{{.+}}, %{{.+}}, %{{.+}} : index, index, index
// CHECK: scf.for %{{.+}} iter_args(
// CHECK: vector.load %{{.+}} : memref<16x8xi8>, vector<4xi8>
// CHECK: arith.xori %{{.+}}, %{{.+}} : i32
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// CHECK: func.func private @wispy_int8_vnni_16x8x32_call
// CHECK: flow.dispatch @wispy_int8_vnni_16x8x32::@wispy_int8_vnni_16x8x32
// CHECK: stream.executable private @wispy_int8_vnni_12x8x32
// CHECK: arith.minui
// CHECK: scf.if
// CHECK: vector.store
// CHECK: stream.executable private @wispy_int8_vnni_2x10x24x32_from30x8_t5_s2_p3
// CHECK: %[[X:.+]] = arith.constant 2 : index
// CHECK: %[[Y:.+]] = arith.constant 1 : index
// CHECK: %[[Z:.+]] = arith.constant 2 : index
// CHECK: stream.return %[[X]], %[[Y]], %[[Z]] : index, index, index
// CHECK: arith.divui
// CHECK: arith.remui
// CHECK: scf.for %[[Q:.+]] = {{.+}} iter_args(
// CHECK: scf.for {{.+}} iter_args(
// CHECK: vector.load %{{.+}} : memref<2x30x8xi8>, vector<4xi8>
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
//
// Columns that are not whole tiles of 32 (the export pads the weight) are refused, with the op's place.
// COLUMNS: wispy.int8_matmul_vnni: 16 columns are not whole tiles of 32
// A window that reads past its sequence (piece stride 7: row 2 * 4 + 7 * 2 = 22 of 15) is refused.
// WINDOW: wispy.int8_conv_vnni: 5 tiles of stride 2, 3 pieces of stride 7 do not fit sequences of 15 of the 30 rows
module {
  func.func @product(%arg0: !torch.vtensor<[16,8],si8>, %arg1: !torch.vtensor<[2,2,64],si8>, %arg2: !torch.vtensor<[32],si32>) -> !torch.vtensor<[16,32],si32> {
    %0 = torch.operator "torch.wispy.int8_matmul_vnni"(%arg0, %arg1, %arg2) : (!torch.vtensor<[16,8],si8>, !torch.vtensor<[2,2,64],si8>, !torch.vtensor<[32],si32>) -> !torch.vtensor<[16,32],si32>
    return %0 : !torch.vtensor<[16,32],si32>
  }
  func.func @ragged(%arg0: !torch.vtensor<[12,8],si8>, %arg1: !torch.vtensor<[2,2,64],si8>, %arg2: !torch.vtensor<[32],si32>) -> !torch.vtensor<[12,32],si32> {
    %0 = torch.operator "torch.wispy.int8_matmul_vnni"(%arg0, %arg1, %arg2) : (!torch.vtensor<[12,8],si8>, !torch.vtensor<[2,2,64],si8>, !torch.vtensor<[32],si32>) -> !torch.vtensor<[12,32],si32>
    return %0 : !torch.vtensor<[12,32],si32>
  }
  func.func @window(%arg0: !torch.vtensor<[2,30,8],si8>, %arg1: !torch.vtensor<[2,2,6,64],si8>, %arg2: !torch.vtensor<[2,32],si32>) -> !torch.vtensor<[2,10,32],si32> {
    %int5 = torch.constant.int 5
    %int15 = torch.constant.int 15
    %int2 = torch.constant.int 2
    %int3 = torch.constant.int 3
    %0 = torch.operator "torch.wispy.int8_conv_vnni"(%arg0, %arg1, %arg2, %int5, %int15, %int2, %int3) : (!torch.vtensor<[2,30,8],si8>, !torch.vtensor<[2,2,6,64],si8>, !torch.vtensor<[2,32],si32>, !torch.int, !torch.int, !torch.int, !torch.int) -> !torch.vtensor<[2,10,32],si32>
    return %0 : !torch.vtensor<[2,10,32],si32>
  }
}
