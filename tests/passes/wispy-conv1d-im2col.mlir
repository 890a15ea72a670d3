// RUN: %wispy-opt %s -p 'builtin.module(wispy-conv1d-im2col)' --explain 2>%t.remarks | %filecheck %s
// RUN: %filecheck %s --check-prefix=REMARK < %t.remarks
// RUN: %wispy-opt %s -p 'builtin.module(wispy-conv1d-im2col{max-col-mb=0})' | %filecheck %s --check-prefix=TOOBIG
// RUN: %wispy-opt %s -p 'builtin.module(wispy-conv1d-im2col{tile=4 k-block=4})' | %filecheck %s --check-prefix=PACKED
// RUN: %wispy-opt %s -p 'builtin.module(wispy-conv1d-im2col{packed=false})' | %filecheck %s --check-prefix=UNPACKED

// Gather maps: batch 1 reads x[0, c, w*2 + k] (stride 2); batch 2 reads x[n, c, w + 2k]
// (dilation 2) and x[n, c, w*2 + k]; the grouped batch-1 form reads x[0, g, c, w + k, 0].
// CHECK: #[[XMAP:.+]] = affine_map<(d0, d1, d2, d3) -> (0, d1, d3 * 2 + d2)>
// CHECK: affine_map<(d0, d1, d2, d3, d4) -> (d1, d3, d2 + d4 * 2)>
// CHECK: affine_map<(d0, d1, d2, d3, d4) -> (d1, d3, d2 * 2 + d4)>
// CHECK: affine_map<(d0, d1, d2, d3) -> (0, d0, d1, d2 + d3, 0)>

// Batch 1, stride 2: W[F, C*K] @ col[C*K, Wout], the weight only reshaped, the product
// already NCW (no transposes).
// CHECK-LABEL: func.func @strided
// CHECK-NOT: linalg.conv_1d_ncw_fcw
// CHECK: linalg.generic {indexing_maps = [#[[XMAP]], #{{.+}}]
// CHECK-SAME: ins(%arg0 : tensor<1x4x21xf32>) outs(%{{.+}} : tensor<1x4x3x10xf32>)
// CHECK: %[[W2:.+]] = tensor.collapse_shape %arg1 {{\[\[}}0], [1, 2]] : tensor<8x4x3xf32> into tensor<8x12xf32>
// CHECK: %[[COL:.+]] = tensor.collapse_shape %{{.+}} : tensor<1x12x10xf32> into tensor<12x10xf32>
// CHECK-NOT: linalg.transpose
// CHECK: %[[MM:.+]] = linalg.matmul ins(%[[W2]], %[[COL]] : tensor<8x12xf32>, tensor<12x10xf32>) outs(%{{.+}} : tensor<8x10xf32>)
// CHECK: tensor.expand_shape %[[MM]] {{\[\[}}0, 1], [2]] output_shape [1, 8, 10]
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.+}} : tensor<1x8x10xf32>) outs(%arg2 : tensor<1x8x10xf32>)
// CHECK: arith.addf
// TOOBIG-LABEL: func.func @strided
// TOOBIG: linalg.conv_1d_ncw_fcw
func.func @strided(%x: tensor<1x4x21xf32>, %w: tensor<8x4x3xf32>, %init: tensor<1x8x10xf32>) -> tensor<1x8x10xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<2> : vector<1xi64>}
       ins(%x, %w : tensor<1x4x21xf32>, tensor<8x4x3xf32>) outs(%init : tensor<1x8x10xf32>) -> tensor<1x8x10xf32>
  return %0 : tensor<1x8x10xf32>
}

// Batch 1, a 1x1 convolution: the input itself is the matmul operand, no gather.
// CHECK-LABEL: func.func @pointwise
// CHECK-NOT: linalg.generic {{.*}}outs(%{{.+}} : tensor<1x4x1x9xf32>)
// CHECK: linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<8x4xf32>, tensor<4x9xf32>)
func.func @pointwise(%x: tensor<1x4x9xf32>, %w: tensor<8x4x1xf32>, %init: tensor<1x8x9xf32>) -> tensor<1x8x9xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<1> : vector<1xi64>}
       ins(%x, %w : tensor<1x4x9xf32>, tensor<8x4x1xf32>) outs(%init : tensor<1x8x9xf32>) -> tensor<1x8x9xf32>
  return %0 : tensor<1x8x9xf32>
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

// Batch 2, stride 2, a weight that is not a constant: col[N*Wout, C*K] @ W^T, the weight
// transposed in IR, the product transposed back to NCW by the bias add.
// CHECK-LABEL: func.func @strided_batch2
// CHECK: linalg.transpose ins(%{{.+}} : tensor<1x8x12xf32>) outs(%{{.+}} : tensor<1x12x8xf32>) permutation = [0, 2, 1]
// CHECK: linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<20x12xf32>, tensor<12x8xf32>) outs(%{{.+}} : tensor<20x8xf32>)
// CHECK: tensor.expand_shape %{{.+}} {{\[\[}}0, 1], [2]] output_shape [2, 10, 8]
func.func @strided_batch2(%x: tensor<2x4x21xf32>, %w: tensor<8x4x3xf32>, %init: tensor<2x8x10xf32>) -> tensor<2x8x10xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<2> : vector<1xi64>}
       ins(%x, %w : tensor<2x4x21xf32>, tensor<8x4x3xf32>) outs(%init : tensor<2x8x10xf32>) -> tensor<2x8x10xf32>
  return %0 : tensor<2x8x10xf32>
}

// A grouped Conv1d as torch-mlir expands it (unit W), batch 1: one batch_matmul over the
// groups, W[g][Fg, Cg*K] @ col[g][Cg*K, Wout].
// CHECK-LABEL: func.func @grouped
// CHECK-NOT: linalg.conv_2d_ngchw_gfchw
// CHECK: linalg.batch_matmul ins(%{{.+}}, %{{.+}} : tensor<2x8x12xf32>, tensor<2x12x12xf32>) outs(%{{.+}} : tensor<2x8x12xf32>)
func.func @grouped(%x: tensor<1x2x4x14x1xf32>, %w: tensor<2x8x4x3x1xf32>, %init: tensor<1x2x8x12x1xf32>) -> tensor<1x2x8x12x1xf32> {
  %0 = linalg.conv_2d_ngchw_gfchw {dilations = dense<1> : vector<2xi64>, strides = dense<1> : vector<2xi64>}
       ins(%x, %w : tensor<1x2x4x14x1xf32>, tensor<2x8x4x3x1xf32>) outs(%init : tensor<1x2x8x12x1xf32>) -> tensor<1x2x8x12x1xf32>
  return %0 : tensor<1x2x8x12x1xf32>
}

// Batch 1 with a dynamic number of frames: rewritten, sizes taken with tensor.dim.
// CHECK-LABEL: func.func @dynamic_frames
// CHECK-NOT: linalg.conv_1d_ncw_fcw
// CHECK: %[[WO:.+]] = tensor.dim %arg2, %{{.+}} : tensor<1x8x?xf32>
// CHECK: tensor.empty(%[[WO]]) : tensor<1x4x3x?xf32>
// CHECK: linalg.matmul ins(%{{.+}}, %{{.+}} : tensor<8x12xf32>, tensor<12x?xf32>) outs(%{{.+}} : tensor<8x?xf32>)
func.func @dynamic_frames(%x: tensor<1x4x?xf32>, %w: tensor<8x4x3xf32>, %init: tensor<1x8x?xf32>) -> tensor<1x8x?xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<1> : vector<1xi64>}
       ins(%x, %w : tensor<1x4x?xf32>, tensor<8x4x3xf32>) outs(%init : tensor<1x8x?xf32>) -> tensor<1x8x?xf32>
  return %0 : tensor<1x8x?xf32>
}

// Declined: a dynamic width at batch 2.
// CHECK-LABEL: func.func @dynamic_batch2
// CHECK: linalg.conv_1d_ncw_fcw
// REMARK-DAG: wispy-conv1d-im2col: {{.*}}declined: dynamic shapes (only the time axis may be dynamic, at batch 1)
func.func @dynamic_batch2(%x: tensor<2x4x?xf32>, %w: tensor<8x4x3xf32>, %init: tensor<2x8x?xf32>) -> tensor<2x8x?xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<1> : vector<1xi64>}
       ins(%x, %w : tensor<2x4x?xf32>, tensor<8x4x3xf32>) outs(%init : tensor<2x8x?xf32>) -> tensor<2x8x?xf32>
  return %0 : tensor<2x8x?xf32>
}

// Declined: a dynamic channel count.
// CHECK-LABEL: func.func @dynamic_channels
// CHECK: linalg.conv_1d_ncw_fcw
func.func @dynamic_channels(%x: tensor<1x?x10xf32>, %w: tensor<8x?x3xf32>, %init: tensor<1x8x8xf32>) -> tensor<1x8x8xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<1> : vector<1xi64>}
       ins(%x, %w : tensor<1x?x10xf32>, tensor<8x?x3xf32>) outs(%init : tensor<1x8x8xf32>) -> tensor<1x8x8xf32>
  return %0 : tensor<1x8x8xf32>
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

// Batch 1, a constant weight, a static length: the packed form. F=3, C*K=6, Wout=7 with
// 4x4 tiles: the weight becomes [1, 6, 4, 1] split at k-block into two [1, 3, 4, 1]
// pieces, the input (11 frames) is padded to the 12 the second column tile reads, the
// columns are [2, 6, 4, 1], two chained mmt4d's and an unpack to [3, 7].
// PACKED-LABEL: func.func @packed_constant
// PACKED-NOT: linalg.conv_1d_ncw_fcw
// PACKED: tensor.pad %arg0 low[0, 0, 0] high[0, 0, 1]
// PACKED: linalg.generic {{.*}} outs(%{{.+}} : tensor<2x2x3x4xf32>)
// PACKED: tensor.expand_shape %{{.+}} : tensor<2x6x4xf32> into tensor<2x6x4x1xf32>
// PACKED: %[[ACC:.+]] = linalg.fill {{.*}} -> tensor<1x2x4x4xf32>
// The weight tile [f, ck] -> [0, ck, f, 0], rows padded to the tile with zeros.
// PACKED: %[[W0:.+]] = arith.constant dense<{{.+}}[1.000000e+00], [7.000000e+00], [1.300000e+01], [0.000000e+00]], {{\[\[}}2.000000e+00], {{.+}}> : tensor<1x3x4x1xf32>
// PACKED: %[[C0:.+]] = tensor.extract_slice %{{.+}}[0, 0, 0, 0] [2, 3, 4, 1] [1, 1, 1, 1]
// PACKED: %[[P0:.+]] = linalg.mmt4d ins(%[[W0]], %[[C0]] : tensor<1x3x4x1xf32>, tensor<2x3x4x1xf32>) outs(%[[ACC]] : tensor<1x2x4x4xf32>)
// PACKED: %[[W1:.+]] = arith.constant dense<{{.+}}> : tensor<1x3x4x1xf32>
// PACKED: %[[C1:.+]] = tensor.extract_slice %{{.+}}[0, 3, 0, 0] [2, 3, 4, 1] [1, 1, 1, 1]
// PACKED: %[[P1:.+]] = linalg.mmt4d ins(%[[W1]], %[[C1]] : {{.+}}) outs(%[[P0]] : tensor<1x2x4x4xf32>)
// PACKED: linalg.unpack %[[P1]] inner_dims_pos = [0, 1] inner_tiles = [4, 4] into %{{.+}} : tensor<1x2x4x4xf32> -> tensor<3x7xf32>
// PACKED: arith.addf
// The default (host) tile and k-block: one mmt4d over the whole reduction.
// CHECK-LABEL: func.func @packed_constant
// CHECK-COUNT-1: linalg.mmt4d
// CHECK-NOT: linalg.mmt4d
// CHECK: linalg.unpack
// Without the packed form: the plain matmul.
// UNPACKED-LABEL: func.func @packed_constant
// UNPACKED-NOT: linalg.mmt4d
// UNPACKED: linalg.matmul
func.func @packed_constant(%x: tensor<1x2x11xf32>, %init: tensor<1x3x7xf32>) -> tensor<1x3x7xf32> {
  %w = arith.constant dense<[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[7.0, 8.0, 9.0], [10.0, 11.0, 12.0]],
                             [[13.0, 14.0, 15.0], [16.0, 17.0, 18.0]]]> : tensor<3x2x3xf32>
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<2> : vector<1xi64>, strides = dense<1> : vector<1xi64>}
       ins(%x, %w : tensor<1x2x11xf32>, tensor<3x2x3xf32>) outs(%init : tensor<1x3x7xf32>) -> tensor<1x3x7xf32>
  return %0 : tensor<1x3x7xf32>
}
