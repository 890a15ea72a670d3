// RUN: %wispy-opt %s -p 'builtin.module(wispy-conv1d-im2col)' --explain 2>%t.remarks | %filecheck %s
// RUN: %filecheck %s --check-prefix=REMARK < %t.remarks
// RUN: %wispy-opt %s -p 'builtin.module(wispy-conv1d-im2col{max-col-mb=0})' | %filecheck %s --check-prefix=TOOBIG

// The input window of output w, tap k is w*2 + k (stride 2), w + 2k (dilation 2), and the
// grouped form reads x[n, g, c, w + k, 0].
// CHECK: #[[XMAP:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d1, d3, d2 * 2 + d4)>
// CHECK: affine_map<(d0, d1, d2, d3, d4) -> (d1, d3, d2 + d4 * 2)>
// CHECK: affine_map<(d0, d1, d2, d3, d4) -> (d1, d0, d3, d2 + d4, 0)>

// A Conv1d with stride 2 and a weight that is not a constant: the weight is transposed in IR.
// CHECK-LABEL: func.func @strided
// CHECK-NOT: linalg.conv_1d_ncw_fcw
// CHECK: %[[COL:.+]] = linalg.generic {indexing_maps = [#[[XMAP]], #{{.+}}]
// CHECK-SAME: ins(%arg0 : tensor<1x4x21xf32>) outs(%{{.+}} : tensor<1x1x10x4x3xf32>)
// CHECK: %[[WT:.+]] = linalg.transpose ins(%{{.+}} : tensor<1x8x12xf32>) outs(%{{.+}} : tensor<1x12x8xf32>) permutation = [0, 2, 1]
// CHECK: %[[COL2:.+]] = tensor.collapse_shape %{{.+}} {{\[\[}}0, 1], [2]] : tensor<1x10x12xf32> into tensor<10x12xf32>
// CHECK: %[[MM:.+]] = linalg.matmul ins(%[[COL2]], %{{.+}} : tensor<10x12xf32>, tensor<12x8xf32>) outs(%{{.+}} : tensor<10x8xf32>)
// CHECK: tensor.expand_shape %[[MM]] {{\[\[}}0, 1], [2]] output_shape [1, 10, 8]
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.+}} : tensor<1x10x8xf32>) outs(%arg2 : tensor<1x8x10xf32>)
// CHECK: arith.addf
// TOOBIG-LABEL: func.func @strided
// TOOBIG: linalg.conv_1d_ncw_fcw
func.func @strided(%x: tensor<1x4x21xf32>, %w: tensor<8x4x3xf32>, %init: tensor<1x8x10xf32>) -> tensor<1x8x10xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<2> : vector<1xi64>}
       ins(%x, %w : tensor<1x4x21xf32>, tensor<8x4x3xf32>) outs(%init : tensor<1x8x10xf32>) -> tensor<1x8x10xf32>
  return %0 : tensor<1x8x10xf32>
}

// A dilated Conv1d with a constant weight: repacked at compile time into [C*K, F] order.
// CHECK-LABEL: func.func @dilated_constant
// CHECK: arith.constant dense<{{\[\[\[}}1.000000e+00, 3.000000e+00], [2.000000e+00, 4.000000e+00]]]> : tensor<1x2x2xf32>
// CHECK: linalg.matmul
func.func @dilated_constant(%x: tensor<2x1x9xf32>, %init: tensor<2x2x7xf32>) -> tensor<2x2x7xf32> {
  %w = arith.constant dense<[[[1.0, 2.0]], [[3.0, 4.0]]]> : tensor<2x1x2xf32>
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<2> : vector<1xi64>, strides = dense<1> : vector<1xi64>}
       ins(%x, %w : tensor<2x1x9xf32>, tensor<2x1x2xf32>) outs(%init : tensor<2x2x7xf32>) -> tensor<2x2x7xf32>
  return %0 : tensor<2x2x7xf32>
}

// A grouped Conv1d as torch-mlir expands it (unit W): one batch_matmul over the groups.
// CHECK-LABEL: func.func @grouped
// CHECK-NOT: linalg.conv_2d_ngchw_gfchw
// CHECK: linalg.batch_matmul ins(%{{.+}}, %{{.+}} : tensor<2x12x12xf32>, tensor<2x12x8xf32>) outs(%{{.+}} : tensor<2x12x8xf32>)
func.func @grouped(%x: tensor<1x2x4x14x1xf32>, %w: tensor<2x8x4x3x1xf32>, %init: tensor<1x2x8x12x1xf32>) -> tensor<1x2x8x12x1xf32> {
  %0 = linalg.conv_2d_ngchw_gfchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
       ins(%x, %w : tensor<1x2x4x14x1xf32>, tensor<2x8x4x3x1xf32>) outs(%init : tensor<1x2x8x12x1xf32>) -> tensor<1x2x8x12x1xf32>
  return %0 : tensor<1x2x8x12x1xf32>
}

// Declined: dynamic width.
// CHECK-LABEL: func.func @dynamic
// CHECK: linalg.conv_1d_ncw_fcw
// REMARK-DAG: wispy-conv1d-im2col: {{.*}}declined: dynamic shapes
func.func @dynamic(%x: tensor<1x4x?xf32>, %w: tensor<8x4x3xf32>, %init: tensor<1x8x?xf32>) -> tensor<1x8x?xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<1> : vector<1xi64>}
       ins(%x, %w : tensor<1x4x?xf32>, tensor<8x4x3xf32>) outs(%init : tensor<1x8x?xf32>) -> tensor<1x8x?xf32>
  return %0 : tensor<1x8x?xf32>
}

// Declined: a real 2-D grouped convolution.
// CHECK-LABEL: func.func @conv2d
// CHECK: linalg.conv_2d_ngchw_gfchw
// REMARK-DAG: wispy-conv1d-im2col: {{.*}}declined: a true 2-D convolution
func.func @conv2d(%x: tensor<1x2x4x6x6xf32>, %w: tensor<2x8x4x3x3xf32>, %init: tensor<1x2x8x4x4xf32>) -> tensor<1x2x8x4x4xf32> {
  %0 = linalg.conv_2d_ngchw_gfchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
       ins(%x, %w : tensor<1x2x4x6x6xf32>, tensor<2x8x4x3x3xf32>) outs(%init : tensor<1x2x8x4x4xf32>) -> tensor<1x2x8x4x4xf32>
  return %0 : tensor<1x2x8x4x4xf32>
}

// Declined: integer convolutions are left to the int8 passes.
// CHECK-LABEL: func.func @integer
// CHECK: linalg.conv_1d_ncw_fcw
// REMARK-DAG: wispy-conv1d-im2col: {{.*}}declined: element type i32 is not a float
func.func @integer(%x: tensor<1x4x10xi32>, %w: tensor<8x4x3xi32>, %init: tensor<1x8x8xi32>) -> tensor<1x8x8xi32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<1> : vector<1xi64>}
       ins(%x, %w : tensor<1x4x10xi32>, tensor<8x4x3xi32>) outs(%init : tensor<1x8x8xi32>) -> tensor<1x8x8xi32>
  return %0 : tensor<1x8x8xi32>
}
