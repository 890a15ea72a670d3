// RUN: %wispy-opt %s -p 'builtin.module(wispy-recurrent-kernel)' --explain 2>%t.remarks | %filecheck %s
// RUN: %filecheck %s --check-prefix=REMARK < %t.remarks
// RUN: %wispy-opt %s -p 'builtin.module(wispy-recurrent-kernel{workers=2 row-tile=8})' | %filecheck %s --check-prefix=WORKERS
// RUN: not %wispy-opt %s -p 'builtin.module(wispy-recurrent-kernel{row-tile=32})' 2>&1 | %filecheck %s --check-prefix=HIDDEN
// RUN: %wispy-opt %s -p 'builtin.module(wispy-recurrent-kernel{wide-loads=1 columns=8})' | %filecheck %s --check-prefix=WIDE
// RUN: %wispy-opt %s -p 'builtin.module(wispy-recurrent-kernel{chains=1})' | %filecheck %s --check-prefix=ONECHAIN
// RUN: %wispy-opt %s -p 'builtin.module(wispy-recurrent-kernel{dense=true})' --explain 2>&1 >/dev/null | %filecheck %s --check-prefix=DENSE

// REMARK: remark: wispy-recurrent-kernel: {{.+}}: lowered a GRU layer (T=5, batch 1, hidden 16) to one dispatch: W_hh 48x16 as 1x2 blocks of ~48x8: 2x[13x8]; work 3.7x less than dense; W_ih dense, one matmul
// REMARK: remark: wispy-recurrent-kernel: {{.+}}: lowered a GRU layer (T=5, batch 1, hidden 16) to one dispatch: {{.+}}; W_ih 48x8 as 2x1 blocks of ~24x8: 2x[13x4]; work 3.7x less than dense, partial sums added in the kernel
// HIDDEN: hidden size 16 is not one the kernel takes
// dense=true (compile_model(block_sparse=False)): both matrices whole, zeros included.
// DENSE: lowered a GRU layer (T=5, batch 1, hidden 16) to one dispatch: W_hh 48x16 dense; W_ih dense, one matmul
// DENSE: lowered a GRU layer (T=5, batch 1, hidden 16) to one dispatch: W_hh 48x16 dense; W_ih dense, one matmul

// workers=2 (row tiles of 8): the units are cut in two parts, each a task per step that
// either of the two workgroups per sequence may claim. Each part gets its own rows of W_hh
// (here [2 blocks, 1 group, 8 columns, 1 tile, 8 rows] each) and of the projection: where
// in the batched matmul's rows (pidx) and where in S (prow); part 0 takes units 0..7 (rows
// 0..7, n rows 32..35 at 48..51 in acc_in), part 1 units 8..15 (rows 8..11, z rows 24..31).
// Per frame two i64 words (parts claimed, parts done) in zeros updated in place.
// AArch64's form (wide-loads=1, columns=8): a tile of 16 rows is four vector<4xf32>
// accumulators filled by one `ld1` of four q registers from a pointer that steps 64 bytes
// a tile (the step hidden from LLVM in an empty asm, so each load post-increments), 8
// columns of h a loop iteration (both strips are 8 columns wide): 8 loads an iteration,
// the even columns' fmas into one set of four accumulators, the odd into another.
// WIDE: func.func @wispy_gru_sequence_0(
// WIDE: %[[BASE:.+]] = memref.extract_aligned_pointer_as_index %{{.+}} : memref<2x1x8x1x16xf32> -> index
// WIDE: %[[STEP:.+]] = llvm.inline_asm "", "=r,0" %{{.+}} : (i64) -> i64
// WIDE: %{{.+}}:9 = scf.for %{{.+}} = %c0 to %{{.+}} step %{{.+}} iter_args({{.+}}) -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, i64) {
// WIDE: vector.load %{{.+}} : memref<16xf32>, vector<8xf32>
// WIDE: %[[PTR:.+]] = llvm.inttoptr %{{.+}} : i64 to !llvm.ptr
// WIDE: arith.addi %{{.+}}, %[[STEP]] : i64
// WIDE: %[[Q:.+]] = llvm.call_intrinsic "llvm.aarch64.neon.ld1x4.v4f32.p0"(%[[PTR]])
// WIDE: %[[W:.+]] = llvm.extractvalue %[[Q]][0]
// WIDE: vector.fma %[[W]], %{{.+}} : vector<4xf32>
// WIDE-COUNT-7: llvm.call_intrinsic "llvm.aarch64.neon.ld1x4.v4f32.p0"
// WIDE-NOT: llvm.call_intrinsic
// WIDE: scf.yield
// WORKERS-LABEL: func.func @dense_input_matrix
// WORKERS: call @wispy_gru_sequence_0_call({{.+}}) : (tensor<5x1x48xf32>, tensor<1x16xf32>, tensor<72xf32>, tensor<2x1x8x1x8xf32>, tensor<2x8xi32>, tensor<2x8xi32>, tensor<2x1x8x1x8xf32>, tensor<2x8xi32>, tensor<2x8xi32>)
// WORKERS-LABEL: func.func @sparse_input_matrix
// WORKERS: %[[P:.+]] = linalg.batch_matmul
// WORKERS: %[[I0:.+]] = arith.constant dense<{{\[\[}}0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 0, 0, 0, 0]]> : tensor<2x8xi32>
// WORKERS: %[[S0:.+]] = arith.constant dense<{{\[\[}}0, 1, 2, 3, 4, 5, 6, 7], [48, 49, 50, 51, 64, 64, 64, 64]]> : tensor<2x8xi32>
// WORKERS: %[[I1:.+]] = arith.constant dense<{{\[\[}}8, 9, 10, 11, 0, 0, 0, 0], [0, 1, 2, 3, 4, 5, 6, 7]]> : tensor<2x8xi32>
// WORKERS: %[[S1:.+]] = arith.constant dense<{{\[\[}}8, 9, 10, 11, 64, 64, 64, 64], [24, 25, 26, 27, 28, 29, 30, 31]]> : tensor<2x8xi32>
// WORKERS: call @wispy_gru_sequence_1_call(%[[P]], %[[I0]], %[[S0]], %[[I1]], %[[S1]], %{{.+}})
// WORKERS: stream.return %c2, %c1, %{{.+}} : index, index, index
// WORKERS: scf.while ({{.+}}) : (index, i64) -> (index, i64)
// WORKERS: memref.atomic_rmw ori
// WORKERS: %[[Z:.+]] = arith.constant dense<0> : tensor<10xi64>
// WORKERS: flow.dispatch @wispy_gru_sequence_0::@wispy_gru_sequence_0({{.+}}, %[[Z]]) : ({{.+}}, tensor<10xi64>) -> (tensor<5x1x16xf32>, %[[Z]])

// A GRU layer (input 8, hidden 16, 5 frames) as exported for the kernel: W_hh [48, 16] in two
// column strips of 8, strip 0 keeping rows 0..11, strip 1 rows 20..31; no input bias.
// The op becomes the input projection and a call of a function that dispatches the
// hand-written executable. W_hh is repacked in tiles of 16 rows (12 rows: one tile, a
// group of its own rather than 4 padded ones: [blocks 2, groups 1, columns 8, tiles 1,
// rows 16]) with each packed row's place in the scratch S (acc[48], acc_in[16], then the
// padding rows' slot at 64) and each block's columns.
//
// A dense W_ih: gi = x W_ih^T + b_ih (zeros here) by one matmul, read by the kernel's gates.
// CHECK-LABEL: func.func @dense_input_matrix
// CHECK-NOT: torch.operator
// CHECK-NOT: util.global.load immutable @w_hh
// CHECK: %[[X:.+]] = tensor.collapse_shape %{{.+}} {{\[\[}}0, 1], [2]] : tensor<5x1x8xf32> into tensor<5x8xf32>
// CHECK: %[[WT:.+]] = arith.constant dense<{{.+}}> : tensor<8x48xf32>
// CHECK: %[[GI:.+]] = linalg.matmul ins(%[[X]], %[[WT]] : tensor<5x8xf32>, tensor<8x48xf32>)
// CHECK: %[[GI3:.+]] = tensor.expand_shape %[[GI]]
// CHECK: %[[H0:.+]] = torch_c.to_builtin_tensor %arg1 : !torch.vtensor<[1,16],f32> -> tensor<1x16xf32>
// CHECK: %[[INIT:.+]] = arith.constant dense<{{.+}}> : tensor<80xf32>
// CHECK: %[[V:.+]] = arith.constant dense<{{.+}}> : tensor<2x1x8x1x16xf32>
// CHECK: %[[R:.+]] = arith.constant dense<{{\[\[}}0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 64, 64, 64, 64], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 64, 64, 64, 64]]> : tensor<2x16xi32>
// CHECK: %[[C:.+]] = arith.constant dense<{{\[\[}}0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]]> : tensor<2x8xi32>
// CHECK: %[[HS:.+]] = call @wispy_gru_sequence_0_call(%[[GI3]], %[[H0]], %[[INIT]], %[[V]], %[[R]], %[[C]])
// CHECK: torch_c.from_builtin_tensor %[[HS]] : tensor<5x1x16xf32> -> !torch.vtensor<[5,1,16],f32>
//
// A block-sparse W_ih: one batched matmul per bucket over the gathered input and the compact
// blocks gives every frame's partial sums ([blocks, frames, rows]); the kernel adds them into
// S through each stored row's place (r and z rows in acc, n rows 32..35 in acc_in at 48..51).
// CHECK-LABEL: func.func @sparse_input_matrix
// W_ih's blocks are two column strips of 4, so the frames' columns for each block are x cut
// in two, not gathered:
// CHECK: %[[X3:.+]] = tensor.expand_shape %{{.+}} {{\[\[}}0], [1, 2]] output_shape [5, 2, 4] : tensor<5x8xf32> into tensor<5x2x4xf32>
// CHECK: %[[XG:.+]] = linalg.transpose ins(%[[X3]] : tensor<5x2x4xf32>) outs(%{{.+}} : tensor<2x5x4xf32>) permutation = [1, 0, 2]
// CHECK: %[[P:.+]] = linalg.batch_matmul ins(%[[XG]], %{{.+}} : tensor<2x5x4xf32>, tensor<2x4x13xf32>) outs(%{{.+}} : tensor<2x5x13xf32>)
// CHECK: %[[PR:.+]] = arith.constant dense<{{\[\[}}0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 64], [24, 25, 26, 27, 28, 29, 30, 31, 48, 49, 50, 51, 64]]> : tensor<2x13xi32>
// CHECK: call @wispy_gru_sequence_1_call(%[[P]], %[[PR]], %{{.+}}) : (tensor<2x5x13xf32>, tensor<2x13xi32>, tensor<1x16xf32>, tensor<80xf32>,
//
// The kernels: S and h on the stack; each step copies S's start, (adds the projection's
// partial sums,) runs the block products (4 columns of h per load, the group's tiles'
// sums in vectors: one tile here) and their scatter into S, then the gates.
// CHECK: stream.executable private @wispy_gru_sequence_0
// CHECK: stream.executable.export public @wispy_gru_sequence_0 workgroups()
// CHECK: func.func @wispy_gru_sequence_0(
// CHECK: %[[S:.+]] = memref.alloca() : memref<80xf32>
// CHECK: %[[H:.+]] = memref.alloca() : memref<16xf32>
// The group has one tile, so one accumulator would make every fma wait on the last one's
// latency: column u of an iteration's four adds into accumulator u % 4 (chains=8, at most
// the 4 columns), and the four are summed after the loop. chains=1 keeps one.
// CHECK: scf.for %{{.+}} = %c0 to %{{.+}} step %c1 {
// CHECK: %[[ACC:.+]]:4 = scf.for %{{.+}} iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// CHECK: vector.load %[[H]][%{{.+}}] : memref<16xf32>, vector<4xf32>
// CHECK: vector.fma %{{.+}}, %{{.+}}, %[[A0:[^ ]+]] : vector<16xf32>
// CHECK: vector.fma %{{.+}}, %{{.+}}, %[[A1:[^ ]+]] : vector<16xf32>
// CHECK: %[[S01:.+]] = arith.addf %[[ACC]]#0, %[[ACC]]#1 : vector<16xf32>
// CHECK: %[[S012:.+]] = arith.addf %[[S01]], %[[ACC]]#2 : vector<16xf32>
// CHECK: %[[SUM:.+]] = arith.addf %[[S012]], %[[ACC]]#3 : vector<16xf32>
// CHECK: vector.extract %[[SUM]][0] : f32 from vector<16xf32>
// CHECK: memref.store %{{.+}}, %[[S]][%{{.+}}] : memref<80xf32>
// ONECHAIN-LABEL: stream.executable private @wispy_gru_sequence_0
// ONECHAIN: %[[ACC:.+]] = scf.for %{{.+}} iter_args({{.+}}) -> (vector<16xf32>) {
// ONECHAIN: vector.extract %[[ACC]][0] : f32 from vector<16xf32>
// CHECK: math.tanh
// CHECK: func.func private @wispy_gru_sequence_0_call
// CHECK: flow.dispatch @wispy_gru_sequence_0::@wispy_gru_sequence_0
// CHECK: stream.executable private @wispy_gru_sequence_1
// CHECK: memref.load %{{.+}} : memref<2x5x13xf32>
// CHECK: func.func private @wispy_gru_sequence_1_call
module {
  util.global private @w_hh = dense<[[0.126, -0.132, 0.640, 0.105, -0.536, 0.362, 1.304, 0.947, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [-0.544, -0.316, 0.412, 1.043, -0.129, 1.366, -0.665, 0.352, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [-0.159, 0.541, 0.215, 0.355, -0.654, -0.130, 0.784, 1.493, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [1.802, 1.315, 0.357, -1.208, -0.004, 0.656, -1.288, 0.395, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.329, -0.259, 1.583, 1.320, 0.633, -2.204, 0.052, 0.684, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.189, -0.633, -0.378, -1.091, -1.278, 0.630, 0.581, 1.295, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.161, -0.586, -1.341, -1.402, 0.503, 0.990, -0.164, -1.074, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [-0.076, 0.202, 0.694, -0.758, 1.421, 0.726, 0.844, 1.165, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [-0.569, -1.030, -1.043, 0.268, 0.359, 1.322, -0.014, 1.042, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.319, -0.359, -1.902, -0.109, -0.804, 1.080, -0.289, 0.083, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.513, -0.298, -0.530, -0.236, 1.816, -0.050, 0.087, -1.487, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [-1.474, 1.029, -1.935, -0.240, -0.205, -1.043, 0.613, -0.200, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.068, -0.291, 0.294, -1.510, 0.644, -0.230, 0.359, -0.340], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, -0.248, -1.425, -0.191, -0.020, 1.691, 0.622, -1.529, 2.027], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, -1.375, 1.998, 0.947, -0.379, -0.819, -0.969, 0.123, -0.648], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.943, 0.719, 0.227, 1.162, -1.088, -1.479, -0.867, 0.123], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, -0.207, -0.581, 0.531, 0.089, 1.594, -1.095, 0.363, 0.444], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, -0.385, 0.158, 0.053, 1.101, -0.322, -2.967, -0.760, 0.184], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 2.108, -0.349, -1.137, -0.156, 1.078, -0.937, 1.951, -0.897], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.749, 1.060, 0.770, 2.000, 1.081, 1.284, -0.540, 0.107], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, -0.892, 1.172, -0.085, 0.787, -1.297, -1.938, -1.049, 1.147], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, -0.190, 1.516, 0.161, 1.401, -0.394, -0.253, -3.899, 0.463], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 1.355, 0.002, -0.791, 0.142, 0.218, -0.676, 1.143, -1.888], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 1.232, 0.298, -0.010, 0.441, 0.721, -0.708, -0.290, 0.143], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000]]> : tensor<48x16xf32>
  util.global private @b_hh = dense<[-0.756, 0.531, 0.738, 0.354, -2.361, 1.008, -0.350, -1.216, 0.603, 0.563, -1.043, 2.472, -1.210, -1.733, -1.154, 1.421, -0.176, -0.372, -0.062, -0.597, -0.690, -0.641, 0.708, 1.020, -1.055, 0.239, 0.788, -1.082, -0.503, -1.038, -1.291, 0.102, -0.736, 0.631, -0.029, 0.413, -0.292, -0.635, -0.091, -0.005, -0.706, 0.427, 0.747, 0.158, 1.713, -0.632, 0.521, -0.409]> : tensor<48xf32>
  util.global private @w_ih = dense<[[-0.903, -0.185, -0.097, 1.139, 0.580, -0.752, 0.682, 0.771], [-0.112, -0.258, -0.194, -1.695, 0.189, 0.235, -0.866, 0.742], [-1.373, -0.552, -0.475, 1.988, -1.599, 0.563, 0.942, 0.378], [1.182, -1.003, -2.280, 0.767, -1.196, -0.326, -1.179, 1.052], [0.865, -0.720, 0.903, 0.121, -0.139, 0.057, -0.203, 0.615], [0.310, -0.349, 1.006, -0.611, 0.287, 0.422, 1.479, -0.505], [1.743, 0.176, -0.194, -0.672, 0.586, 0.049, -1.104, -1.128], [-0.556, -0.676, 1.090, 1.376, 0.869, 0.358, -0.428, 0.054], [0.885, 2.131, 0.913, -0.280, 0.038, -0.483, -0.782, -0.184], [0.196, 1.836, 0.052, 1.357, 1.767, 0.079, 1.608, 0.715], [-0.418, 0.265, 0.023, -0.232, -0.199, 0.144, 0.434, -0.885], [-0.009, -1.522, 0.261, 0.624, 0.164, 0.286, 0.590, -0.665], [-0.239, 0.511, 1.002, 0.395, 2.553, -0.091, 1.000, 1.267], [-0.134, -0.821, -1.183, 0.162, 1.110, 0.272, 0.173, -0.379], [0.561, -2.136, 0.232, 0.028, -1.370, 2.176, -1.387, -1.078], [-1.201, 1.110, -0.888, 0.669, 0.588, 0.260, -1.308, -0.612], [1.673, -1.291, -0.832, -0.162, 0.809, 0.252, 0.742, -1.067], [0.945, 0.569, -1.595, 1.540, 2.292, -0.769, 0.056, 1.397], [-1.481, -1.990, -1.297, -0.567, -0.578, 0.607, 0.269, -1.246], [0.567, 1.874, 1.197, 0.991, 0.020, 0.984, -0.966, 0.751], [-0.087, 1.131, 0.466, -1.090, 0.128, 1.218, -1.129, -0.559], [-0.769, -1.496, 0.961, 1.311, 0.800, 0.243, -0.052, 0.239], [-0.732, 0.894, 1.045, 0.933, -0.531, 0.078, -0.166, 1.789], [0.180, -1.882, 0.399, 1.882, 0.685, 0.879, 0.036, -1.971], [-1.810, -1.246, -0.127, 0.310, 0.689, -0.340, 0.957, -0.280], [-0.704, 0.852, -0.914, -2.729, -1.060, 0.094, -3.080, -0.357], [-0.332, -1.426, -1.483, -0.462, -0.547, 1.260, 0.375, -1.581], [-0.855, 0.705, 1.896, 0.386, 0.311, 1.861, -0.023, -0.309], [-1.413, -0.513, 2.179, -1.422, 0.011, -1.408, 0.128, 0.888], [-0.244, 0.730, 0.721, 0.447, 1.716, 0.779, -0.305, -0.681], [-0.845, 0.476, -0.324, 2.729, 1.842, -0.215, -0.329, 1.690], [-1.883, -0.452, 0.951, -0.912, -0.477, -0.351, 0.661, 0.138], [0.402, 0.595, 0.030, 1.111, -0.729, -1.436, -1.777, -1.621], [-0.551, 1.030, 0.174, -0.599, -1.070, -0.529, -0.404, -0.565], [-1.433, -0.476, 1.017, -2.175, -0.241, -2.121, 0.183, -0.747], [-2.086, 0.101, 1.817, 0.109, 1.162, -0.072, -2.158, 0.490], [-0.418, -1.462, 0.785, 0.287, -0.525, 0.868, -0.872, 0.643], [-0.940, 0.534, -1.101, 1.489, 0.254, 1.433, -0.822, -0.476], [0.840, -2.744, -1.067, 1.033, 0.465, 0.979, -0.310, 0.564], [-0.731, -1.372, -1.695, -0.552, -0.549, -0.629, -3.549, -1.999], [-0.533, 0.287, -0.579, -0.877, -2.308, 2.021, -1.101, 1.683], [1.561, 0.274, -0.573, 0.132, -1.153, 0.261, 0.003, 0.532], [0.950, 1.733, -0.388, 1.043, -0.792, -0.895, -0.618, -0.982], [0.980, 0.923, 1.272, -0.025, 0.274, -0.578, -1.151, 0.447], [0.268, -1.107, 0.585, -1.742, -0.179, -0.630, -0.529, -1.083], [0.952, 0.566, 1.183, 0.130, -1.298, -0.379, -1.192, 0.447], [1.199, 0.316, -0.613, -0.383, 0.190, -1.460, 0.135, 0.183], [-0.560, -0.434, 0.154, -0.838, -0.840, 0.760, 0.203, 1.659]]> : tensor<48x8xf32>
  util.global private @w_ih_sparse = dense<[[0.346, 0.822, 0.330, -1.303, 0.000, 0.000, 0.000, 0.000], [0.365, 0.294, 0.028, 0.547, 0.000, 0.000, 0.000, 0.000], [0.040, -0.292, -0.782, -0.257, 0.000, 0.000, 0.000, 0.000], [-2.711, -1.889, -0.175, -0.422, 0.000, 0.000, 0.000, 0.000], [-0.378, 2.043, 0.647, 0.663, 0.000, 0.000, 0.000, 0.000], [-1.227, -0.683, -0.072, -0.945, 0.000, 0.000, 0.000, 0.000], [0.594, 0.891, 0.321, -0.818, 0.000, 0.000, 0.000, 0.000], [0.914, -0.020, -1.249, -0.314, 0.000, 0.000, 0.000, 0.000], [0.200, -0.467, 0.236, 0.760, 0.000, 0.000, 0.000, 0.000], [-0.811, 0.752, 0.253, 0.896, 0.000, 0.000, 0.000, 0.000], [0.775, 0.194, -1.631, -1.195, 0.000, 0.000, 0.000, 0.000], [0.446, 0.468, 0.876, 0.256, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 1.110, 0.168, 0.548, -1.065], [0.000, 0.000, 0.000, 0.000, -0.673, -0.024, -1.266, 1.867], [0.000, 0.000, 0.000, 0.000, -0.239, -0.564, -0.133, -1.171], [0.000, 0.000, 0.000, 0.000, -0.293, 0.753, -0.323, -0.137], [0.000, 0.000, 0.000, 0.000, -1.143, -0.746, 0.359, 0.403], [0.000, 0.000, 0.000, 0.000, -1.412, 0.770, -0.701, -1.126], [0.000, 0.000, 0.000, 0.000, 1.812, -0.603, -1.540, 0.619], [0.000, 0.000, 0.000, 0.000, 0.246, -0.747, 0.679, -0.470], [0.000, 0.000, 0.000, 0.000, -0.863, 0.620, -1.760, -1.031], [0.000, 0.000, 0.000, 0.000, 0.899, -0.915, -0.626, 0.333], [0.000, 0.000, 0.000, 0.000, 0.861, -0.040, -1.779, 0.627], [0.000, 0.000, 0.000, 0.000, -0.909, 0.438, 0.199, -0.675], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000], [0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000]]> : tensor<48x8xf32>
  func.func @dense_input_matrix(%arg0: !torch.vtensor<[5,1,8],f32>, %arg1: !torch.vtensor<[1,16],f32>) -> !torch.vtensor<[5,1,16],f32> {
    %wi = util.global.load immutable @w_ih : tensor<48x8xf32>
    %0 = torch_c.from_builtin_tensor %wi : tensor<48x8xf32> -> !torch.vtensor<[48,8],f32>
    %none = torch.constant.none
    %w = util.global.load immutable @w_hh : tensor<48x16xf32>
    %1 = torch_c.from_builtin_tensor %w : tensor<48x16xf32> -> !torch.vtensor<[48,16],f32>
    %b = util.global.load immutable @b_hh : tensor<48xf32>
    %2 = torch_c.from_builtin_tensor %b : tensor<48xf32> -> !torch.vtensor<[48],f32>
    %3 = torch.operator "torch.wispy.gru_sequence"(%arg0, %arg1, %0, %none, %1, %2) : (!torch.vtensor<[5,1,8],f32>, !torch.vtensor<[1,16],f32>, !torch.vtensor<[48,8],f32>, !torch.none, !torch.vtensor<[48,16],f32>, !torch.vtensor<[48],f32>) -> !torch.vtensor<[5,1,16],f32>
    return %3 : !torch.vtensor<[5,1,16],f32>
  }
  func.func @sparse_input_matrix(%arg0: !torch.vtensor<[5,1,8],f32>, %arg1: !torch.vtensor<[1,16],f32>) -> !torch.vtensor<[5,1,16],f32> {
    %wi = util.global.load immutable @w_ih_sparse : tensor<48x8xf32>
    %0 = torch_c.from_builtin_tensor %wi : tensor<48x8xf32> -> !torch.vtensor<[48,8],f32>
    %none = torch.constant.none
    %w = util.global.load immutable @w_hh : tensor<48x16xf32>
    %1 = torch_c.from_builtin_tensor %w : tensor<48x16xf32> -> !torch.vtensor<[48,16],f32>
    %b = util.global.load immutable @b_hh : tensor<48xf32>
    %2 = torch_c.from_builtin_tensor %b : tensor<48xf32> -> !torch.vtensor<[48],f32>
    %3 = torch.operator "torch.wispy.gru_sequence"(%arg0, %arg1, %0, %none, %1, %2) : (!torch.vtensor<[5,1,8],f32>, !torch.vtensor<[1,16],f32>, !torch.vtensor<[48,8],f32>, !torch.none, !torch.vtensor<[48,16],f32>, !torch.vtensor<[48],f32>) -> !torch.vtensor<[5,1,16],f32>
    return %3 : !torch.vtensor<[5,1,16],f32>
  }
}
