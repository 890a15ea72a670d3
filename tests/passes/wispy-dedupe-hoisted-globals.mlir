// RUN: %wispy-opt %s -p 'builtin.module(wispy-dedupe-hoisted-globals)' | %filecheck %s

// Two hoisted globals computed by identical initializers (what IREE's data tiling leaves
// for a weight used by two matmuls) become one; the loads of the second read the first.
// A third initializer computing something else, and a public global, stay.
// CHECK: util.global private @enc_a
// CHECK-NOT: util.global private @enc_b
// CHECK: util.global private @other
// CHECK: util.global public @exported
util.global private @w = dense<1.0> : tensor<4x4xf32>
util.global private @enc_a : tensor<4x4xf32>
util.initializer {
  %0 = util.global.load immutable @w : tensor<4x4xf32>
  %1 = arith.addf %0, %0 : tensor<4x4xf32>
  util.global.store %1, @enc_a : tensor<4x4xf32>
  util.return
}
util.global private @enc_b : tensor<4x4xf32>
util.initializer {
  %0 = util.global.load immutable @w : tensor<4x4xf32>
  %1 = arith.addf %0, %0 : tensor<4x4xf32>
  util.global.store %1, @enc_b : tensor<4x4xf32>
  util.return
}
util.global private @other : tensor<4x4xf32>
util.initializer {
  %0 = util.global.load immutable @w : tensor<4x4xf32>
  %1 = arith.mulf %0, %0 : tensor<4x4xf32>
  util.global.store %1, @other : tensor<4x4xf32>
  util.return
}
util.global public @exported : tensor<4x4xf32>
util.initializer {
  %0 = util.global.load immutable @w : tensor<4x4xf32>
  %1 = arith.addf %0, %0 : tensor<4x4xf32>
  util.global.store %1, @exported : tensor<4x4xf32>
  util.return
}
// CHECK-LABEL: util.func public @main
// CHECK: util.global.load @enc_a
// CHECK-NEXT: util.global.load @enc_a
// CHECK-NEXT: util.global.load @other
util.func public @main() -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>) {
  %a = util.global.load @enc_a : tensor<4x4xf32>
  %b = util.global.load @enc_b : tensor<4x4xf32>
  %c = util.global.load @other : tensor<4x4xf32>
  util.return %a, %b, %c : tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>
}
