// RUN: %wispy-opt %s -p 'builtin.module(wispy-softmax-last-dim{always=true})' --explain 2>%t.remarks | %filecheck %s
// RUN: %filecheck %s --check-prefix=REMARK < %t.remarks
// RUN: %wispy-opt %s -p 'builtin.module(wispy-softmax-last-dim)' | %filecheck %s --check-prefix=HOST

// A log-softmax over the channels of [B, C, T] (how Wav2letter and ConvDFSMN end) becomes
// transpose(1, 2) -> log-softmax over the last dimension -> transpose(1, 2); a softmax over
// dimension -3 (= 0) the same with (0, 2). One over the last dimension stays as it is.
// CHECK-LABEL: func.func @channels
// CHECK: %false = torch.constant.bool false
// CHECK: %[[D:.+]] = torch.constant.int 1
// CHECK: %[[L:.+]] = torch.constant.int 2
// CHECK: %[[T:.+]] = torch.aten.transpose.int %arg0, %[[D]], %[[L]] : !torch.vtensor<[1,29,50],f32>, !torch.int, !torch.int -> !torch.vtensor<[1,50,29],f32>
// CHECK: %[[S:.+]] = torch.aten._log_softmax %[[T]], %[[L]], %false : !torch.vtensor<[1,50,29],f32>, !torch.int, !torch.bool -> !torch.vtensor<[1,50,29],f32>
// CHECK: %[[B:.+]] = torch.aten.transpose.int %[[S]], %[[D]], %[[L]] : !torch.vtensor<[1,50,29],f32>, !torch.int, !torch.int -> !torch.vtensor<[1,29,50],f32>
// CHECK: return %[[B]]
// CHECK-LABEL: func.func @negative_dim
// CHECK: %false = torch.constant.bool false
// CHECK: %[[D0:.+]] = torch.constant.int 0
// CHECK: %[[L0:.+]] = torch.constant.int 2
// CHECK: torch.aten.transpose.int %arg0, %[[D0]], %[[L0]] : !torch.vtensor<[3,4,5],f32>, !torch.int, !torch.int -> !torch.vtensor<[5,4,3],f32>
// CHECK: torch.aten._softmax %{{.+}}, %[[L0]], %false : !torch.vtensor<[5,4,3],f32>
// CHECK-LABEL: func.func @last
// CHECK-NOT: torch.aten.transpose.int
// CHECK: torch.aten._log_softmax %arg0, %int2
// REMARK: remark: wispy-softmax-last-dim: {{.+}}: _log_softmax over dimension 1 of 3 taken over the last between two transposes
// REMARK: remark: wispy-softmax-last-dim: {{.+}}: _softmax over dimension 0 of 3 taken over the last between two transposes
// REMARK-NOT: remark

// Without a Vulkan target (and without always=true) nothing changes.
// HOST-LABEL: func.func @channels
// HOST-NOT: torch.aten.transpose.int
// HOST: torch.aten._log_softmax %arg0, %int1
module {
  func.func @channels(%arg0: !torch.vtensor<[1,29,50],f32>) -> !torch.vtensor<[1,29,50],f32> {
    %int1 = torch.constant.int 1
    %false = torch.constant.bool false
    %0 = torch.aten._log_softmax %arg0, %int1, %false : !torch.vtensor<[1,29,50],f32>, !torch.int, !torch.bool -> !torch.vtensor<[1,29,50],f32>
    return %0 : !torch.vtensor<[1,29,50],f32>
  }
  func.func @negative_dim(%arg0: !torch.vtensor<[3,4,5],f32>) -> !torch.vtensor<[3,4,5],f32> {
    %int-3 = torch.constant.int -3
    %false = torch.constant.bool false
    %0 = torch.aten._softmax %arg0, %int-3, %false : !torch.vtensor<[3,4,5],f32>, !torch.int, !torch.bool -> !torch.vtensor<[3,4,5],f32>
    return %0 : !torch.vtensor<[3,4,5],f32>
  }
  func.func @last(%arg0: !torch.vtensor<[1,29,50],f32>) -> !torch.vtensor<[1,29,50],f32> {
    %int2 = torch.constant.int 2
    %false = torch.constant.bool false
    %0 = torch.aten._log_softmax %arg0, %int2, %false : !torch.vtensor<[1,29,50],f32>, !torch.int, !torch.bool -> !torch.vtensor<[1,29,50],f32>
    return %0 : !torch.vtensor<[1,29,50],f32>
  }
}
