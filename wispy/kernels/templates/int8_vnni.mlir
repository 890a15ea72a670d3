// The int8 VNNI matmul (wispy/kernels/int8_vnni.py): C = A @ W^T, ROWS rows and COLS
// columns a workgroup. Sections are filled by wispy/kernels/templates.py; `$gi` is "%g, "
// with G products in one dispatch (the product's index in every access), else empty.

// ==== executable ====
stream.executable private @$name {
  stream.executable.export public @$name workgroups() -> (index, index, index) {
    %x = arith.constant $tiles_m : index
    %y = arith.constant $tiles_n : index
    %z = arith.constant $groups : index
    stream.return %x, %y, %z : index, index, index
  }
  builtin.module {
    func.func @$name(%b0: !stream.binding, %b1: !stream.binding, %b2: !stream.binding, %b3: !stream.binding$b4) {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c4 = arith.constant 4 : index
      %c16 = arith.constant 16 : index
      %cKc4 = arith.constant $Kc4 : index
      %cP = arith.constant $P : index
      %cMlast = arith.constant $Mlast : index
      %A = stream.binding.subspan %b0[%c0] : !stream.binding -> memref<$ta>
      %W = stream.binding.subspan %b1[%c0] : !stream.binding -> memref<$tw>
      %R = stream.binding.subspan %b2[%c0] : !stream.binding -> memref<$tc>
      %C = stream.binding.subspan %b$c_binding[%c0] : !stream.binding -> memref<$to>
      %wm = stream.dispatch.workgroup.id[0] : index
      %wn = stream.dispatch.workgroup.id[1] : index
      %g = stream.dispatch.workgroup.id[2] : index
      %cR = arith.constant $ROWS : index
      %cN = arith.constant $NR : index
      %mbase = arith.muli %wm, %cR : index
      %nbase = arith.muli %wn, %cN : index
      // xor of each 4-byte word: + 128 in each byte, A read as unsigned
      %flip = arith.constant -2139062144 : i32
      %z = arith.constant dense<0> : vector<16xi32>
      $scale_binding
      $window_constants
      $rows
      $columns
      $products
      $outputs
      return
    }
  }
}
$call

// ==== scale_binding ====
%S = stream.binding.subspan %b3[%c0] : !stream.binding -> memref<$ts>

// ==== window_constants ====
%cTiles = arith.constant $tiles : index
%cSeq = arith.constant $seq_rows : index
%cRowStride = arith.constant $row_stride : index
%cPieceStride = arith.constant $piece_stride : index

// ==== row ====
%cr$r = arith.constant $r : index
%m$r = arith.addi %mbase, %cr$r : index

// ==== row_ragged ====
// A ragged last tile of rows reads the last row again for its missing rows.
%cr$r = arith.constant $r : index
%mr$r = arith.addi %mbase, %cr$r : index
%m$r = arith.minui %mr$r, %cMlast : index

// ==== row_window ====
// The row's first physical row: s * seq_rows + row_stride * t.
%s$r = arith.divui %m$r, %cTiles : index
%t$r = arith.remui %m$r, %cTiles : index
%sb$r = arith.muli %s$r, %cSeq : index
%tb$r = arith.muli %t$r, %cRowStride : index
%p$r = arith.addi %sb$r, %tb$r : index

// ==== column ====
%cj$j = arith.constant $j : index
%nb$j = arith.addi %nbase, %cj$j : index

// ==== loop ====
%res:$n = scf.for %k = %c0 to %cKc4 step %c1 iter_args($inits) -> ($types) {
  %kb = arith.muli %k, %c4 : index
  $step
}

// ==== loop_window ====
// Per piece its rows, then its channels as the inner loop.
%res:$n = scf.for %q = %c0 to %cP step %c1 iter_args($inits) -> ($types) {
  %qo = arith.muli %q, %cPieceStride : index
  %qk = arith.muli %q, %cKc4 : index
  $piece_rows
  %in:$n = scf.for %c = %c0 to %cKc4 step %c1 iter_args($inner_inits) -> ($types) {
    %k = arith.addi %qk, %c : index
    %kb = arith.muli %c, %c4 : index
    $step
  }
  scf.yield $inner : $types
}

// ==== piece_row ====
%row$r = arith.addi %p$r, %qo : index

// ==== step ====
// Four k: W's column blocks, then per row 4 bytes of A against each.
$weights
$rows
scf.yield $outs : $types

// ==== weights ====
%wv$j = vector.load %W[${gi}%nb$j, %k, %c0] : memref<$tw>, vector<64xi8>

// ==== a_row ====
%a4$r = vector.load %A[${gi}$row, %kb] : memref<$ta>, vector<4xi8>
%aw$r = vector.bitcast %a4$r : vector<4xi8> to vector<1xi32>
%as$r = vector.extract %aw$r[0] : i32 from vector<1xi32>
%au$r = arith.xori %as$r, %flip : i32
%ab$r = vector.broadcast %au$r : i32 to vector<16xi32>
%a8$r = vector.bitcast %ab$r : vector<16xi32> to vector<64xi8>
$dots

// ==== dot ====
%n${r}_$j = llvm.call_intrinsic "$intrinsic"($acc, %a8$r, %wv$j) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>

// ==== output ====
// C's tile (r, j): the sums plus corr (and with a scale, f32(sum) * scale[n]).
%col$rj = arith.muli %nb$j, %c16 : index
%cv$rj = vector.load %R[${gi}%col$rj] : memref<$tc>, vector<16xi32>
%o$rj = arith.addi %res#$i, %cv$rj : vector<16xi32>
$scale
$store

// ==== scale ====
// f32(product) * scale[n], as the reference rounds it.
%sv$rj = vector.load %S[${gi}%col$rj] : memref<$ts>, vector<16xf32>
%of$rj = arith.sitofp %o$rj : vector<16xi32> to vector<16xf32>
%os$rj = arith.mulf %of$rj, %sv$rj : vector<16xf32>

// ==== store ====
vector.store $value, %C[${gi}%m$r, %col$rj] : memref<$to>, $type

// ==== store_ragged ====
// Only the real rows of a ragged last tile.
%v$rj = arith.cmpi ule, %mr$r, %cMlast : index
scf.if %v$rj {
  $store
}

// ==== call ====
func.func private @${name}_call(%a: tensor<$ta>, %w: tensor<$tw>, %r: tensor<$tc>) -> tensor<$to> {
  %0 = flow.dispatch @$name::@$name(%a, %w, %r) : (tensor<$ta>, tensor<$tw>, tensor<$tc>) -> tensor<$to>
  return %0 : tensor<$to>
}

// ==== call_scaled ====
func.func private @${name}_call(%a: tensor<$ta>, %w: tensor<$tw>, %r: tensor<$tc>, %s: tensor<$ts>) -> tensor<$to> {
  %0 = flow.dispatch @$name::@$name(%a, %w, %r, %s) : (tensor<$ta>, tensor<$tw>, tensor<$tc>, tensor<$ts>) -> tensor<$to>
  return %0 : tensor<$to>
}
