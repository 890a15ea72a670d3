// RUN: %wispy-opt %s -p 'builtin.module(wispy-vulkan-pad-gather{always=true})' | %filecheck %s
// RUN: %wispy-opt %s -p 'builtin.module(wispy-vulkan-pad-gather)' | %filecheck %s --check-prefix=HOST

// A pad by 2 floats on the innermost axis (not a whole vec4) becomes a gather: a generic
// over the padded shape that extracts src[i - 2] inside the source and yields the
// padding value outside it. A pad by 4 floats (aligned) and one on an outer axis stay.
// CHECK-LABEL: func.func @misaligned
// CHECK-NOT: tensor.pad
// CHECK: %[[E:.+]] = tensor.empty() : tensor<8x12xf32>
// CHECK: linalg.generic {{.+}} outs(%[[E]] : tensor<8x12xf32>)
// CHECK: %[[I:.+]] = linalg.index 1 : index
// CHECK: %[[J:.+]] = arith.subi %[[I]], %c2
// CHECK: arith.cmpi sge, %[[J]]
// CHECK: arith.cmpi slt, %[[J]]
// CHECK: %[[X:.+]] = tensor.extract %arg0
// CHECK: arith.select %{{.+}}, %[[X]], %cst : f32
func.func @misaligned(%a: tensor<8x8xf32>) -> tensor<8x12xf32> {
  %cst = arith.constant 0.0 : f32
  %p = tensor.pad %a low[0, 2] high[0, 2] {
  ^bb0(%i: index, %j: index):
    tensor.yield %cst : f32
  } : tensor<8x8xf32> to tensor<8x12xf32>
  return %p : tensor<8x12xf32>
}

// A dynamic number of frames: the gather's size is dim + low + high.
// CHECK-LABEL: func.func @dynamic
// CHECK: %[[D:.+]] = tensor.dim %arg0, %c2
// CHECK: %[[N:.+]] = arith.addi %[[D]], %c{{[0-9_]+}} : index
// CHECK: tensor.empty(%[[N]]) : tensor<1x3x?xf32>
// CHECK: tensor.extract %arg0
func.func @dynamic(%a: tensor<1x3x?xf32>) -> tensor<1x3x?xf32> {
  %cst = arith.constant 0.0 : f32
  %p = tensor.pad %a low[0, 0, 1] high[0, 0, 1] {
  ^bb0(%i: index, %j: index, %k: index):
    tensor.yield %cst : f32
  } : tensor<1x3x?xf32> to tensor<1x3x?xf32>
  return %p : tensor<1x3x?xf32>
}

// CHECK-LABEL: func.func @aligned
// CHECK: tensor.pad %arg0 low[0, 4] high[0, 2]
// CHECK: tensor.pad %{{.+}} low[3, 0] high[1, 0]
func.func @aligned(%a: tensor<8x8xf32>) -> tensor<12x14xf32> {
  %cst = arith.constant 0.0 : f32
  %p = tensor.pad %a low[0, 4] high[0, 2] {
  ^bb0(%i: index, %j: index):
    tensor.yield %cst : f32
  } : tensor<8x8xf32> to tensor<8x14xf32>
  %q = tensor.pad %p low[3, 0] high[1, 0] {
  ^bb0(%i: index, %j: index):
    tensor.yield %cst : f32
  } : tensor<8x14xf32> to tensor<12x14xf32>
  return %q : tensor<12x14xf32>
}

// Without a Vulkan target (and without always=true) nothing changes.
// HOST-LABEL: func.func @misaligned
// HOST: tensor.pad %arg0 low[0, 2] high[0, 2]
