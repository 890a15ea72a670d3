// RUN: %wispy-opt %s -p 'builtin.module(wispy-block-sparse{min-elements=0 min-gain=1.5 block=16x16 scatter-combine=0})' --explain 2>%t.remarks | %filecheck %s
// RUN: %filecheck %s --check-prefix=REMARK < %t.remarks
// RUN: %wispy-opt %s -p 'builtin.module(wispy-block-sparse{min-elements=0})' | %filecheck %s --check-prefix=AUTO
// RUN: %wispy-opt %s -p 'builtin.module(wispy-block-sparse{min-elements=0 min-gain=1.5 block=16x16 row-tile=16 scatter-combine=0})' | %filecheck %s --check-prefix=TILED
// RUN: %wispy-opt %s -p 'builtin.module(wispy-block-sparse{min-elements=0 min-gain=1.5 block=16x16 row-tile=16 scatter-combine=2})' | %filecheck %s --check-prefix=SCATTER

// W[16, 32] (out x in): two column strips of 16, rows 0 and 5 kept in the first, 5 and 9
// in the second. Packed: one bucket of 2 blocks of 2x16. Over many rows: each block's
// columns (the strips: x cut in two by a reshape and a transpose, no gather), a
// batch_matmul, and a combine adding row 5's two partial sums (rows with fewer read block
// 0's zero row, the padding row every block ends with). At one row (the recurrent
// product) the strips are the input itself.

// REMARK: declined: weight (16, 16): its zeros save 0.
// REMARK: lowered a constant at 2 sites: 16x32 as 1x2 blocks of ~16x16: 2x[3x16]; work 5.3x less than dense
// Found without a forced grid, too.
// AUTO-LABEL: util.func public @linear
// AUTO-NOT: linalg.matmul

// CHECK-LABEL: util.func public @linear
// CHECK-NOT: linalg.matmul
// CHECK-NOT: tensor<2x16xi32>
// CHECK: arith.constant dense<{{.+}}> : tensor<2x16x3xf32>
// CHECK: %[[X3:.+]] = tensor.expand_shape %arg0 {{\[\[}}0], [1, 2]] output_shape [%{{.+}}, 2, 16] : tensor<?x32xf32> into tensor<?x2x16xf32>
// CHECK: %[[XG:.+]] = linalg.transpose ins(%[[X3]] : tensor<?x2x16xf32>) outs(%{{.+}} : tensor<2x?x16xf32>) permutation = [1, 0, 2]
// CHECK: %[[P:.+]] = linalg.batch_matmul ins(%[[XG]], %{{.+}} : tensor<2x?x16xf32>, tensor<2x16x3xf32>)
// CHECK: linalg.transpose ins(%[[P]] : tensor<2x?x3xf32>)
// CHECK: %[[FLAT:.+]] = tensor.collapse_shape %{{.+}} {{\[\[}}0], [1, 2]] : tensor<?x2x3xf32> into tensor<?x6xf32>
// CHECK: %[[TABLE:.+]] = arith.constant dense<{{\[\[}}0, 2, 2, 2, 2, 1, 2, 2, 2, 4, 2, 2, 2, 2, 2, 2], [2, 2, 2, 2, 2, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]]> : tensor<2x16xi32>
// CHECK: linalg.generic {{.+}} iterator_types = ["parallel", "parallel"]
// CHECK-SAME: ins(%[[TABLE]], %[[TABLE]] : tensor<2x16xi32>, tensor<2x16xi32>) outs(%arg1 : tensor<?x16xf32>)
// CHECK: tensor.extract %[[FLAT]]
// CHECK: tensor.extract %[[FLAT]]
// CHECK-NOT: arith.select
util.global private @w = dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 49.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0, 64.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<16x32xf32>
util.func public @linear(%x: tensor<?x32xf32>, %init: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %w = util.global.load immutable @w : tensor<16x32xf32>
  %e = tensor.empty() : tensor<32x16xf32>
  %wt = linalg.transpose ins(%w : tensor<16x32xf32>) outs(%e : tensor<32x16xf32>) permutation = [1, 0]
  %y = linalg.matmul ins(%x, %wt : tensor<?x32xf32>, tensor<32x16xf32>) outs(%init : tensor<?x16xf32>) -> tensor<?x16xf32>
  util.return %y : tensor<?x16xf32>
}

// The recurrent product `(W * h.unsqueeze(-2)).sum(-1)` at one row.
// With row-tile=16 (what CPU targets get): each block's 3 rows padded to a tile of 16,
// stored [block, column, row] so a vector holds 16 rows' sums; one multiply-add generic
// with the CPU tiling attached; the combine table re-pointed at the padded rows (row 5's
// second partial sum at 16 = block 1's row 0, row 9's at 17).
// TILED: #config = #iree_cpu.lowering_config<distribution = [1, 0, 0], vector_common_parallel = [1, 16, 0], vector_reduction = [0, 0, 1]>
// TILED: #[[CFG:.+]] = #iree_codegen.compilation_info<lowering_config = #config, translation_info = #translation>
// With the scatter combine (the default on Arm CPUs): the 32 padded product rows added into the
// 16 outputs by one scatter, each position's row of W as its index (padding adds its
// zero product to row 0).
// Over many rows (a dynamic count P) with scatter-combine=2: the products computed as
// V[b] @ xg[b]^T ([2, 3, P], each product row whole), scattered into y^T [16, P] (a
// whole row of P per update, init transposed in), then transposed back.
// SCATTER-LABEL: util.func public @linear
// SCATTER: linalg.batch_matmul ins(%{{.+}}, %{{.+}} : tensor<2x3x16xf32>, tensor<2x16x?xf32>) outs(%{{.+}} : tensor<2x3x?xf32>)
// SCATTER: %[[UPD:.+]] = tensor.collapse_shape %{{.+}} {{\[\[}}0, 1], [2]] : tensor<2x3x?xf32> into tensor<6x?xf32>
// SCATTER: %[[INIT_T:.+]] = linalg.generic {{.+}} ins(%arg1 : tensor<?x16xf32>) outs(%{{.+}} : tensor<16x?xf32>)
// SCATTER: %[[IDX:.+]] = arith.constant dense<{{\[\[}}0], [5], [0], [5], [9], [0]]> : tensor<6x1xi32>
// SCATTER: %[[Y_T:.+]] = iree_linalg_ext.scatter dimension_map = [0] unique_indices(false) ins(%[[UPD]], %[[IDX]] : tensor<6x?xf32>, tensor<6x1xi32>) outs(%[[INIT_T]] : tensor<16x?xf32>)
// SCATTER: linalg.generic {{.+}} ins(%[[Y_T]] : tensor<16x?xf32>) outs(%{{.+}} : tensor<?x16xf32>)
// SCATTER-LABEL: util.func public @matvec
// SCATTER-NOT: tensor.extract %
// SCATTER: %[[IDX:.+]] = arith.constant dense<{{\[\[}}0], [5], [0], {{.+}}, [0], [5], [9], [0], {{.+}}]> : tensor<32x1xi32>
// SCATTER: iree_linalg_ext.scatter dimension_map = [0] unique_indices(false) ins(%{{.+}}, %[[IDX]] : tensor<32xf32>, tensor<32x1xi32>) outs(%{{.+}} : tensor<16xf32>)
// SCATTER: arith.addf
// SCATTER: iree_linalg_ext.yield
// TILED-LABEL: util.func public @matvec
// TILED: tensor.expand_shape %{{.+}} {{\[\[}}0, 1]] output_shape [2, 16] : tensor<32xf32> into tensor<2x16xf32>
// TILED: tensor.collapse_shape %{{.+}} {{\[\[}}0], [1, 2], [3]] : tensor<2x1x16x16xf32> into tensor<2x16x16xf32>
// TILED: linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "reduction"]
// TILED-SAME: ins(%{{.+}}, %{{.+}} : tensor<2x16x16xf32>, tensor<2x16xf32>) outs(%{{.+}} : tensor<2x16xf32>) attrs = {compilation_info = #[[CFG]]}
// TILED: arith.mulf
// TILED: arith.addf
// TILED: arith.constant dense<{{\[\[}}0, 2, 2, 2, 2, 1, 2, 2, 2, 17, 2, 2, 2, 2, 2, 2], [2, 2, 2, 2, 2, 16, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]]> : tensor<2x16xi32>
// TILED: tensor.extract %{{.+}} : tensor<1x32xf32>
// CHECK-LABEL: util.func public @matvec
// CHECK-NOT: tensor<16x32xf32>
// CHECK: %[[H:.+]] = tensor.collapse_shape %arg0
// CHECK: tensor.expand_shape %[[H]] {{\[\[}}0], [1, 2, 3]] output_shape [1, 2, 1, 16] : tensor<1x32xf32> into tensor<1x2x1x16xf32>
// CHECK: linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "parallel"]
// CHECK: arith.mulf
// CHECK: linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]
// CHECK: arith.addf
// CHECK: tensor.collapse_shape %{{.+}} {{\[\[}}0], [1, 2]] : tensor<1x2x3xf32> into tensor<1x6xf32>
// CHECK: linalg.generic
// CHECK-SAME: outs(%{{.+}} : tensor<1x16xf32>)
util.func public @matvec(%h: tensor<1x1x32xf32>) -> tensor<1x16xf32> {
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 49.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0, 64.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<16x32xf32>
  %e = tensor.empty() : tensor<1x16x32xf32>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, 0, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %h : tensor<16x32xf32>, tensor<1x1x32xf32>) outs(%e : tensor<1x16x32xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    linalg.yield %p : f32
  } -> tensor<1x16x32xf32>
  %zero = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<1x16xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e2 : tensor<1x16xf32>) -> tensor<1x16xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%m : tensor<1x16x32xf32>) outs(%z : tensor<1x16xf32>) {
  ^bb0(%a: f32, %o: f32):
    %q = arith.addf %a, %o : f32
    linalg.yield %q : f32
  } -> tensor<1x16xf32>
  util.return %s : tensor<1x16xf32>
}

// A dense weight is left alone, and says why with --explain.
// CHECK-LABEL: util.func public @dense
// CHECK: linalg.matmul
// AUTO-LABEL: util.func public @dense
// AUTO: linalg.matmul
util.func public @dense(%x: tensor<4x16xf32>, %init: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %w = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0], [17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0], [33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0], [49.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0, 64.0], [65.0, 66.0, 67.0, 68.0, 69.0, 70.0, 71.0, 72.0, 73.0, 74.0, 75.0, 76.0, 77.0, 78.0, 79.0, 80.0], [81.0, 82.0, 83.0, 84.0, 85.0, 86.0, 87.0, 88.0, 89.0, 90.0, 91.0, 92.0, 93.0, 94.0, 95.0, 96.0], [97.0, 98.0, 99.0, 100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0, 109.0, 110.0, 111.0, 112.0], [113.0, 114.0, 115.0, 116.0, 117.0, 118.0, 119.0, 120.0, 121.0, 122.0, 123.0, 124.0, 125.0, 126.0, 127.0, 128.0], [129.0, 130.0, 131.0, 132.0, 133.0, 134.0, 135.0, 136.0, 137.0, 138.0, 139.0, 140.0, 141.0, 142.0, 143.0, 144.0], [145.0, 146.0, 147.0, 148.0, 149.0, 150.0, 151.0, 152.0, 153.0, 154.0, 155.0, 156.0, 157.0, 158.0, 159.0, 160.0], [161.0, 162.0, 163.0, 164.0, 165.0, 166.0, 167.0, 168.0, 169.0, 170.0, 171.0, 172.0, 173.0, 174.0, 175.0, 176.0], [177.0, 178.0, 179.0, 180.0, 181.0, 182.0, 183.0, 184.0, 185.0, 186.0, 187.0, 188.0, 189.0, 190.0, 191.0, 192.0], [193.0, 194.0, 195.0, 196.0, 197.0, 198.0, 199.0, 200.0, 201.0, 202.0, 203.0, 204.0, 205.0, 206.0, 207.0, 208.0], [209.0, 210.0, 211.0, 212.0, 213.0, 214.0, 215.0, 216.0, 217.0, 218.0, 219.0, 220.0, 221.0, 222.0, 223.0, 224.0], [225.0, 226.0, 227.0, 228.0, 229.0, 230.0, 231.0, 232.0, 233.0, 234.0, 235.0, 236.0, 237.0, 238.0, 239.0, 240.0], [241.0, 242.0, 243.0, 244.0, 245.0, 246.0, 247.0, 248.0, 249.0, 250.0, 251.0, 252.0, 253.0, 254.0, 255.0, 256.0]]> : tensor<16x16xf32>
  %y = linalg.matmul ins(%x, %w : tensor<4x16xf32>, tensor<16x16xf32>) outs(%init : tensor<4x16xf32>) -> tensor<4x16xf32>
  util.return %y : tensor<4x16xf32>
}
