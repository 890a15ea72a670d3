// IREE 3.13, vulkan-spirv: a pad fused into its producer's dispatch drops the offset.
// docs/design/known-issues.md#vulkan-misaligned-pad-store
//
//   iree-compile --iree-hal-target-device=vulkan --iree-vulkan-target=valhall \
//       vulkan-misaligned-pad-store.mlir -o pad.vmfb
//   iree-run-module --device=vulkan --module=pad.vmfb --input="8x8xf32=1"
//
// Expected each row [0 0 -1 -1 -1 -1 -1 -1 -1 -1 0 0]; lavapipe (Mesa 22.3) gives
// [-1 -1 -1 -1 -1 -1 -1 -1 0 0 0 0]: the values land at column 0, not column 2.
// The same with --iree-vulkan-target=adreno, and with a matmul as the producer.
// Right on llvm-cpu; right without the negf (a pad of the argument itself).
func.func @main(%a: tensor<8x8xf32>) -> tensor<8x12xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x8xf32>
  %m = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<8x8xf32>) outs(%e : tensor<8x8xf32>) {
  ^bb0(%x: f32, %o: f32):
    %n = arith.negf %x : f32
    linalg.yield %n : f32
  } -> tensor<8x8xf32>
  %p = tensor.pad %m low[0, 2] high[0, 2] {
  ^bb0(%i: index, %j: index):
    tensor.yield %cst : f32
  } : tensor<8x8xf32> to tensor<8x12xf32>
  return %p : tensor<8x12xf32>
}
