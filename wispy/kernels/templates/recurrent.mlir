// The recurrent kernel (wispy/kernels/recurrent/): the executable around it, the
// one-worker kernel, W_hh's and the projection's products, a GRU's and an LSTM's gates.
// Sections are filled by wispy/kernels/templates.py; names as in the Python that fills them.

// ==== executable ====
stream.executable private @$name {
  stream.executable.export public @$name workgroups() -> (index, index, index) {
    %b = arith.constant $B : index
    %c1 = arith.constant 1 : index
    %cw = arith.constant $workers : index
    stream.return $grid : index, index, index
  }
  builtin.module {
    $body
  }
}
func.func private @${name}_call($args) -> $ret {
  $call
}

// ==== call ====
// One worker: the dispatch's results are the state's (hs, and an LSTM's cs).
$results = flow.dispatch @$name::@$name($names) : ($types) -> $ret
return $rets : $rtypes

// ==== call_workers ====
// Several workers: the counter words, zeros, updated in place.
%zeros = arith.constant dense<0> : tensor<${words}xi64>
%0:$count = flow.dispatch @$name::@$name($names, %zeros) : ($types, tensor<${words}xi64>) -> ($rtypes, %zeros)
return $rets : $rtypes

// ==== index ====
%c$i = arith.constant $i : index

// ==== subspan ====
%m$i = stream.binding.subspan %b$i[%c0] : !stream.binding -> $type

// ==== one_worker ====
func.func @$name($bindings) {
  $constants
  %cT = arith.constant $T : index
  %cB = arith.constant $B : index
  %cH = arith.constant $H : index
  %cNS = arith.constant $NS : index
  %cTL = arith.constant $TL : index
  %cG = arith.constant $G : index
  %cGW = arith.constant $GW : index
  %cIN = arith.constant $IN : index
  %wg = stream.dispatch.workgroup.id[0] : index
  $subspans
  %S = memref.alloca() : $SM
  %h = memref.alloca() : memref<${H}xf32>
  %zv = arith.constant dense<0.0> : $V
  %half = arith.constant dense<0.5> : $VG
  scf.for %u = %c0 to %cH step %cTL {
    %x = vector.load $h0[%wg, %u] : $h0_type, $V
    vector.store %x, %h[%u] : memref<${H}xf32>, $V
  }
  scf.for %t = %c0 to %cT step %c1 {
    %tpar = arith.remui %t, %c2 : index
    %odd = arith.cmpi eq, %tpar, %c1 : index
    %snake_on = arith.constant $snake
    %snake = arith.andi %odd, %snake_on : i1
    $previous
    scf.for %u = %c0 to %cNS step %cTL {
      %x = vector.load $init[%u] : $init_type, $V
      vector.store %x, %S[%u] : $SM, $V
    }
    $projection
    $products
    scf.for %u = %c0 to %cH step %cGW {
      $gates
    }
  }
  return
}

// ==== previous_step ====
// An LSTM's c_{t-1}: c0 at the first step, else cs[t-1].
%first = arith.cmpi eq, %t, %c0 : index
%tp0 = arith.subi %t, %c1 : index
%tp = arith.select %first, %c0, %tp0 : index

// ==== frame ====
// The frame %p (step %t of sequence %wg) of the projection's partial sums.
%tb = arith.muli %t, %cB : index
%p = arith.addi %tb, %wg : index

// ==== projection_bucket ====
%pnb$k = arith.constant $nb : index
$count = arith.constant $rows : index
scf.for %blk = %c0 to %pnb$k step %c1 {
  $add
}

// ==== projection_rows ====
// Frame %p's partial sums of block $item, each added into S at its row's place.
scf.for %i = %c0 to $count step %c1 {
  $part_row
  %v = memref.load %m$prod[$item, %p, $row] : $prod_type
  %ri = memref.load %m$prow[$item, %i] : $prow_type
  %rx = arith.index_cast %ri : i32 to index
  %o = memref.load %S[%rx] : $SM
  %q = arith.addf %o, %v : f32
  memref.store %q, %S[%rx] : $SM
}

// ==== part_row ====
// A part's i-th row of the projection is prod's row pidx[item, i].
%pix = memref.load %m$pidx[$item, %i] : $pidx_type
%pxx = arith.index_cast %pix : i32 to index

// ==== bucket ====
// W_hh's bucket $k, every block and group; odd steps (%snake) walk them backwards.
%nb$k = arith.constant $nb : index
%ng$k = arith.constant $ng : index
%cc$k = arith.constant $c : index
%st$k = arith.constant $uj : index
%nb1$k = arith.constant $nb1 : index
%ng1$k = arith.constant $ng1 : index
scf.for %blk0 = %c0 to %nb$k step %c1 {
  %blkr = arith.subi %nb1$k, %blk0 : index
  %blk = arith.select %snake, %blkr, %blk0 : index
  scf.for %grp0 = %c0 to %ng$k step %c1 {
    %grpr = arith.subi %ng1$k, %grp0 : index
    %grp = arith.select %snake, %grpr, %grp0 : index
    $group
  }
}

// ==== group ====
// One group of row tiles: sums over the block's columns of h, scattered into S.
$wide
%s:$n = scf.for %j = %c0 to %cc$k step %st$k iter_args($inits) -> ($types) {
  $strip
  $columns
  scf.yield $yields : $types
}
$set_sums
%cgs = arith.constant $G : index
%gbase = arith.muli %grp, %cgs : index
$scatter

// ==== group_ld1x4 ====
// AArch64 ld1x4: the byte address of the group's first tile at column 0; a column's G
// tiles follow it contiguously (values packed [nb, ng, c, G, TL], the binding at offset
// 0). The pointer steps 64 bytes a tile through an empty asm, so that LLVM cannot fold
// the chain of adds into offsets from one base (ld1 has no offset form): each load then
// takes the post-incrementing form, `ld1 {...}, [x], x_step`.
%zq = arith.constant dense<0.0> : vector<4xf32>
%vbase = memref.extract_aligned_pointer_as_index $mv : $vals -> index
%cng$k = arith.constant $ng : index
%cgc$k = arith.constant $bytes : index
%bg0 = arith.muli %blk, %cng$k : index
%bg1 = arith.addi %bg0, %grp : index
%bg2 = arith.muli %bg1, %cgc$k : index
%gaddr = arith.addi %vbase, %bg2 : index
%gptr = arith.index_cast %gaddr : index to i64
%c64i = arith.constant 64 : i64
%pstep = llvm.inline_asm "", "=r,0" %c64i : (i64) -> i64

// ==== strip ====
// Column strips: uj columns of h in one load, each broadcast from its lane.
%j0 = memref.load $mc[%blk, %j] : $cols
%jx = arith.index_cast %j0 : i32 to index
%hq = vector.load %h[%jx] : memref<${H}xf32>, vector<${uj}xf32>

// ==== column_strip ====
%ju$u = arith.addi %j, %c$u : index
%x$u = vector.extract %hq[$u] : f32 from vector<${uj}xf32>
%xb$u = vector.broadcast %x$u : f32 to $V

// ==== column_gather ====
%ju$u = arith.addi %j, %c$u : index
%ci$u = memref.load $mc[%blk, %ju$u] : $cols
%cx$u = arith.index_cast %ci$u : i32 to index
%x$u = memref.load %h[%cx$u] : memref<${H}xf32>
%xb$u = vector.broadcast %x$u : f32 to $V

// ==== tile_fma ====
%w${g}_$u = vector.load $mv[%blk, %grp, %ju$u, %c$g, %c0] : $vals, $V
%n${g}_$u = vector.fma %w${g}_$u, %xb$u, $acc : $V

// ==== tile_ld1x4 ====
%pt${g}_$u = llvm.inttoptr $ptr : i64 to !llvm.ptr
%pn${g}_$u = arith.addi $ptr, %pstep : i64
%ld${g}_$u = llvm.call_intrinsic "$intrinsic"(%pt${g}_$u) : (!llvm.ptr) -> $Q4

// ==== quarter_fma ====
%w${i}_$u = llvm.extractvalue %ld${g}_$u[$q] : $Q4
%n${i}_$u = vector.fma %w${i}_$u, %xb$u, $acc : $V

// ==== set_sum ====
%sum${i}_$kk = arith.addf $sum, $other : $V

// ==== scatter_tile ====
%tb$g = arith.addi %gbase, %c$g : index
%rb$g = arith.muli %tb$g, %cTL : index
$lanes

// ==== scatter_lane ====
// Row rows[blk, tile * TL + lane] of S += the sum's lane (rows of one block are distinct).
%ri$p = arith.addi %rb$g, %c$lane : index
%rw$p = memref.load $mr[%blk, %ri$p] : $rows
%rx$p = arith.index_cast %rw$p : i32 to index
%e$p = vector.extract $sum[$at] : f32 from $V
%o$p = memref.load %S[%rx$p] : $SM
%q$p = arith.addf %o$p, %e$p : f32
memref.store %q$p, %S[%rx$p] : $SM

// ==== gru_indices ====
%uz = arith.addi %u, %cH : index
%un = arith.addi %uz, %cH : index
%ui = arith.addi %u, %cIN : index

// ==== lstm_indices ====
%uf = arith.addi %u, %cH : index
%ug = arith.addi %uf, %cH : index
%uo = arith.addi %ug, %cH : index

// ==== read_sum ====
%gh_$gate = vector.load %S[$at] : $SM, $VG

// ==== read_gi ====
%gi_$gate = vector.load $gi[%t, $seq, $at] : $gi_type, $VG

// ==== add_gi ====
%p_$gate = arith.addf %gi_$gate, %gh_$gate : $VG

// ==== sigmoid ====
// sigmoid(x) = 0.5 + 0.5 tanh(x / 2): the gates share tanh's polynomial constants.
%hp_$gate = arith.mulf $pre, %half : $VG
%th_$gate = math.tanh %hp_$gate : $VG
%$out = math.fma %th_$gate, %half, %half : $VG

// ==== gru ====
$inputs
%hv = vector.load %h[%u] : memref<${H}xf32>, $VG
$sigmoids
%rn = arith.mulf %rg, %gh_n : $VG
%pn = arith.addf $gin, %rn : $VG
%ng = math.tanh %pn : $VG
%d = arith.subf %hv, %ng : $VG
%zd = arith.mulf %zg, %d : $VG
%hn = arith.addf %ng, %zd : $VG
$keep_h
vector.store %hn, $hs[%t, $seq, %u] : $state_type, $VG

// ==== lstm ====
$inputs
$sigmoids
%gt = math.tanh $pre_g : $VG
%cp = scf.if %first -> ($VG) {
  %cpa = vector.load $c0[$seq, %u] : $c0_type, $VG
  scf.yield %cpa : $VG
} else {
  %cpb = vector.load $cs[%tp, $seq, %u] : $state_type, $VG
  scf.yield %cpb : $VG
}
%fc = arith.mulf %fs, %cp : $VG
%cn = math.fma %is, %gt, %fc : $VG
%tcn = math.tanh %cn : $VG
%hn = arith.mulf %os, %tcn : $VG
$keep_h
vector.store %hn, $hs[%t, $seq, %u] : $state_type, $VG
vector.store %cn, $cs[%t, $seq, %u] : $state_type, $VG

// ==== keep_h ====
// The one-worker kernel's own copy of h.
vector.store %hn, %h[%u] : memref<${H}xf32>, $VG
