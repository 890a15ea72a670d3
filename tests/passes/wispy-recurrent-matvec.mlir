// RUN: %wispy-opt %s -p 'builtin.module(wispy-recurrent-matvec{min-elements=0 row-tile=16})' --explain 2>%t.lowered | %filecheck %s
// RUN: %filecheck %s --check-prefix=LOWERED < %t.lowered
// RUN: %wispy-opt %s -p 'builtin.module(wispy-recurrent-matvec)' --explain 2>%t.declined | %filecheck %s --check-prefix=SMALL
// RUN: %filecheck %s --check-prefix=DECLINED < %t.declined

// LOWERED-DAG: remark: wispy-recurrent-matvec: {{.+}}: lowered a constant
// DECLINED: remark: wispy-recurrent-matvec: {{.+}}: declined: weight a constant (20, 8) is smaller than min-elements=4096

// The dense recurrent product `(W * h.unsqueeze(-2)).sum(-1)` at batch 1, W[20, 8]: W packed
// in tiles of 16 rows ([2 tiles, 8 columns, 16 rows], rows 20..31 zero), one multiply-add
// generic over (tile, row, column) with the CPU tiling (2 tiles' sums held at once), the
// products sliced back to 20 rows. The bias add after the sum is untouched.
// CHECK: #config = #iree_cpu.lowering_config<distribution = [2, 0, 0], vector_common_parallel = [2, 16, 0], vector_reduction = [0, 0, 1]>
// CHECK-LABEL: util.func public @step
// CHECK-NOT: tensor<1x20x8xf32>
// CHECK: %[[W:.+]] = arith.constant dense<{{.+}}> : tensor<1x2x8x16xf32>
// CHECK: %[[X:.+]] = tensor.expand_shape %{{.+}} {{\[\[}}0, 1]] output_shape [1, 8] : tensor<8xf32> into tensor<1x8xf32>
// CHECK: %[[WT:.+]] = tensor.collapse_shape %[[W]] {{\[\[}}0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
// CHECK: %[[XV:.+]] = tensor.collapse_shape %[[X]] {{\[\[}}0, 1]] : tensor<1x8xf32> into tensor<8xf32>
// CHECK: %[[P:.+]] = linalg.generic {{.+}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME: ins(%[[WT]], %[[XV]] : tensor<2x8x16xf32>, tensor<8xf32>) outs(%{{.+}} : tensor<2x16xf32>) attrs = {compilation_info = #{{.+}}}
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: %[[FLAT:.+]] = tensor.collapse_shape %[[P]] {{\[\[}}0, 1]] : tensor<2x16xf32> into tensor<32xf32>
// CHECK: %[[Y:.+]] = tensor.extract_slice %[[FLAT]][0] [20] [1] : tensor<32xf32> to tensor<20xf32>
// CHECK: tensor.expand_shape %[[Y]] {{\[\[}}0, 1]] output_shape [1, 20] : tensor<20xf32> into tensor<1x20xf32>
// CHECK: arith.addf
// A weight under min-elements (4096 by default) keeps IREE's own matvec.
// SMALL-LABEL: util.func public @step
// SMALL: tensor<1x20x8xf32>
util.func public @step(%h: tensor<1x1x8xf32>, %bias: tensor<1x20xf32>) -> tensor<1x20xf32> {
  %w = arith.constant dense<[[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0], [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0], [-1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0], [0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0], [2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0], [3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0], [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0], [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0], [-1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0], [0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0], [2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0], [3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0], [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0], [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0], [-1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0], [0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0], [2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0]]> : tensor<20x8xf32>
  %e = tensor.empty() : tensor<1x20x8xf32>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, 0, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %h : tensor<20x8xf32>, tensor<1x1x8xf32>) outs(%e : tensor<1x20x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    linalg.yield %p : f32
  } -> tensor<1x20x8xf32>
  %z = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<1x20xf32>
  %f = linalg.fill ins(%z : f32) outs(%e2 : tensor<1x20xf32>) -> tensor<1x20xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%m : tensor<1x20x8xf32>) outs(%f : tensor<1x20xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %p = arith.addf %acc, %a : f32
    linalg.yield %p : f32
  } -> tensor<1x20xf32>
  %e3 = tensor.empty() : tensor<1x20xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%s, %bias : tensor<1x20xf32>, tensor<1x20xf32>) outs(%e3 : tensor<1x20xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.addf %a, %b : f32
    linalg.yield %p : f32
  } -> tensor<1x20xf32>
  util.return %y : tensor<1x20xf32>
}

// A constant bias [20] added to the product alone (a GRU's b_hh): it starts the sums
// instead, padded to the 32 rows of the tiles, and the separate add is gone.
// CHECK-LABEL: util.func public @step_const_bias
// CHECK: %[[B:.+]] = arith.constant dense<[5.000000e-01, {{.+}}, 0.000000e+00]> : tensor<32xf32>
// CHECK: %[[B2:.+]] = tensor.expand_shape %[[B]] {{\[\[}}0, 1]] output_shape [2, 16] : tensor<32xf32> into tensor<2x16xf32>
// CHECK: linalg.generic {{.+}} outs(%[[B2]] : tensor<2x16xf32>) attrs = {compilation_info
// CHECK: tensor.extract_slice %{{.+}}[0] [20] [1] : tensor<32xf32> to tensor<20xf32>
// CHECK-NEXT: %[[OUT:.+]] = tensor.expand_shape
// CHECK-NEXT: util.return %[[OUT]] : tensor<1x20xf32>
util.func public @step_const_bias(%h: tensor<1x1x8xf32>) -> tensor<1x20xf32> {
  %w = arith.constant dense<[[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0], [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0], [-1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0], [0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0], [2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0], [3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0], [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0], [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0], [-1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0], [0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0], [2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0], [3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0], [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0], [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0], [-1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0], [0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0], [2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0]]> : tensor<20x8xf32>
  %bias = arith.constant dense<[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0]> : tensor<20xf32>
  %e = tensor.empty() : tensor<1x20x8xf32>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, 0, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %h : tensor<20x8xf32>, tensor<1x1x8xf32>) outs(%e : tensor<1x20x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    linalg.yield %p : f32
  } -> tensor<1x20x8xf32>
  %z = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<1x20xf32>
  %f = linalg.fill ins(%z : f32) outs(%e2 : tensor<1x20xf32>) -> tensor<1x20xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%m : tensor<1x20x8xf32>) outs(%f : tensor<1x20xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %p = arith.addf %acc, %a : f32
    linalg.yield %p : f32
  } -> tensor<1x20xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%s, %bias : tensor<1x20xf32>, tensor<20xf32>) outs(%e2 : tensor<1x20xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.addf %a, %b : f32
    linalg.yield %p : f32
  } -> tensor<1x20xf32>
  util.return %y : tensor<1x20xf32>
}

// A tensor of the product's shape added to it alone (an LSTM step's gi_t, which holds
// both biases): it starts the sums, and the add is gone. Only when the rows fill whole
// tiles (above, 20 rows in tiles of 16, the add stays).
// CHECK-LABEL: util.func public @step_added_tensor
// CHECK-SAME: (%{{.+}}: tensor<1x1x4xf32>, %[[GI:.+]]: tensor<1x16xf32>)
// CHECK: %[[START:.+]] = tensor.collapse_shape %[[GI]] {{\[\[}}0, 1]] : tensor<1x16xf32> into tensor<16xf32>
// CHECK: %[[P:.+]] = linalg.generic {{.+}} outs(%[[START]] : tensor<16xf32>) attrs = {compilation_info
// CHECK: %[[OUT:.+]] = tensor.expand_shape
// CHECK-NEXT: util.return %[[OUT]] : tensor<1x16xf32>
// LOWERED-DAG: remark: wispy-recurrent-matvec: {{.+}}: folded the added tensor into the sums
util.func public @step_added_tensor(%h: tensor<1x1x4xf32>, %gi: tensor<1x16xf32>) -> tensor<1x16xf32> {
  %w = arith.constant dense<[[-3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0], [-2.0, -1.0, 0.0, 1.0], [2.0, 3.0, -3.0, -2.0], [-1.0, 0.0, 1.0, 2.0], [3.0, -3.0, -2.0, -1.0], [0.0, 1.0, 2.0, 3.0], [-3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0], [-2.0, -1.0, 0.0, 1.0], [2.0, 3.0, -3.0, -2.0], [-1.0, 0.0, 1.0, 2.0], [3.0, -3.0, -2.0, -1.0], [0.0, 1.0, 2.0, 3.0], [-3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, -3.0]]> : tensor<16x4xf32>
  %e = tensor.empty() : tensor<1x16x4xf32>
  %m = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, 0, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%w, %h : tensor<16x4xf32>, tensor<1x1x4xf32>) outs(%e : tensor<1x16x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    linalg.yield %p : f32
  } -> tensor<1x16x4xf32>
  %z = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<1x16xf32>
  %f = linalg.fill ins(%z : f32) outs(%e2 : tensor<1x16xf32>) -> tensor<1x16xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%m : tensor<1x16x4xf32>) outs(%f : tensor<1x16xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %p = arith.addf %acc, %a : f32
    linalg.yield %p : f32
  } -> tensor<1x16xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%gi, %s : tensor<1x16xf32>, tensor<1x16xf32>) outs(%e2 : tensor<1x16xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.addf %a, %b : f32
    linalg.yield %p : f32
  } -> tensor<1x16xf32>
  util.return %y : tensor<1x16xf32>
}
