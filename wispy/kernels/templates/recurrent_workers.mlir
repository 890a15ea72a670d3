// The several-worker recurrent kernel (wispy/kernels/recurrent/workers.py): per sequence
// and step, the workers claim the parts' tasks through two i64 words of bits (parts
// claimed, parts done). Sections are filled by wispy/kernels/templates.py; the products
// and gates inside a task come from recurrent.mlir.

// ==== kernel ====
func.func @$name($bindings) {
  $constants
  %cT = arith.constant $T : index
  %cB = arith.constant $B : index
  %cH = arith.constant $H : index
  %cTL = arith.constant $TL : index
  %cG = arith.constant $G : index
  %cGW = arith.constant $GW : index
  %cIN = arith.constant $IN : index
  %cW = arith.constant $W : index
  %steal = arith.constant $steal : index
  %true = arith.constant true
  %z64 = arith.constant 0 : i64
  %one64 = arith.constant 1 : i64
  %all = arith.constant $all : i64
  %wk = stream.dispatch.workgroup.id[0] : index
  %wb = stream.dispatch.workgroup.id[1] : index
  $subspans
  %ncnt = arith.constant $words : index
  %cnt = stream.binding.subspan %b$counters[%c0] : !stream.binding -> memref<?xi64>{%ncnt}
  $results
  %S = memref.alloca() : $SM
  %h = memref.alloca() : memref<${H}xf32>
  %zv = arith.constant dense<0.0> : $V
  %half = arith.constant dense<0.5> : $VG
  // %alone: every part so far was claimed here (no other worker has run yet); such a
  // worker claims the parts in reverse order on odd steps, the whole matrix's snake
  %fin = scf.for %t = %c0 to %cT step %c1 iter_args(%alone = %true) -> (i1) {
    %seqt = arith.muli %wb, %cT : index
    %seqt1 = arith.addi %seqt, %t : index
    %ccl = arith.muli %seqt1, %c2 : index
    %cdn = arith.addi %ccl, %c1 : index
    %first = arith.cmpi eq, %t, %c0 : index
    %tp0 = arith.subi %t, %c1 : index
    %tp = arith.select %first, %c0, %tp0 : index
    %tpar = arith.remui %t, %c2 : index
    %odd = arith.cmpi eq, %tpar, %c1 : index
    %snake_on = arith.constant $snake
    %snake = arith.andi %odd, %snake_on : i1
    %rev0 = arith.andi %snake, %alone : i1
    $frame
    // pick a part: claim one (own part first), or, after `steal` idle polls, run one
    // that is claimed but not done; W: none
    %wl:2 = scf.while (%spins = %c0, %mine = %z64) : (index, i64) -> (index, i64) {
      %dn = memref.atomic_rmw ori %z64, %cnt[%cdn] : (i64, memref<?xi64>) -> i64
      %more = arith.cmpi ne, %dn, %all : i64
      %cl = memref.atomic_rmw ori %z64, %cnt[%ccl] : (i64, memref<?xi64>) -> i64
      %open = arith.cmpi ne, %cl, %all : i64
      %kc = scf.if %open -> (index) {
        %r = scf.for %i = %c0 to %cW step %c1 iter_args(%got = %cW) -> (index) {
          %free = arith.cmpi eq, %got, %cW : index
          %g2 = scf.if %free -> (index) {
            %ki0 = arith.addi %wk, %i : index
            %kr0 = arith.addi %wk, %cW : index
            %kr1 = arith.subi %kr0, %c1 : index
            %kr = arith.subi %kr1, %i : index
            %ki1 = arith.select %rev0, %kr, %ki0 : index
            %ki = arith.remui %ki1, %cW : index
            %kb = arith.index_cast %ki : index to i64
            %bit = arith.shli %one64, %kb : i64
            %old = memref.atomic_rmw ori %bit, %cnt[%ccl] : (i64, memref<?xi64>) -> i64
            %had = arith.andi %old, %bit : i64
            %ismine = arith.cmpi eq, %had, %z64 : i64
            %g3 = arith.select %ismine, %ki, %got : index
            scf.yield %g3 : index
          } else {
            scf.yield %got : index
          }
          scf.yield %g2 : index
        }
        scf.yield %r : index
      } else {
        scf.yield %cW : index
      }
      %none = arith.cmpi eq, %kc, %cW : index
      %kcb0 = arith.index_cast %kc : index to i64
      %kcb1 = arith.shli %one64, %kcb0 : i64
      %kcb = arith.select %none, %z64, %kcb1 : i64
      %mine2 = arith.ori %mine, %kcb : i64
      %late = arith.cmpi uge, %spins, %steal : index
      %stealing = arith.andi %none, %late : i1
      %k = scf.if %stealing -> (index) {
        %r = scf.for %i = %c0 to %cW step %c1 iter_args(%got = %cW) -> (index) {
          %free = arith.cmpi eq, %got, %cW : index
          %ki0 = arith.addi %wk, %i : index
          %ki = arith.remui %ki0, %cW : index
          %kb = arith.index_cast %ki : index to i64
          %bit = arith.shli %one64, %kb : i64
          %had = arith.andi %dn, %bit : i64
          %undone = arith.cmpi eq, %had, %z64 : i64
          %take = arith.andi %free, %undone : i1
          %g3 = arith.select %take, %ki, %got : index
          scf.yield %g3 : index
        }
        scf.yield %r : index
      } else {
        scf.yield %kc : index
      }
      %idle = arith.cmpi eq, %k, %cW : index
      %sp1 = arith.addi %spins, %c1 : index
      %spn = arith.select %idle, %sp1, %c0 : index
      %work = arith.xori %idle, %true : i1
      scf.if %work {
        $tasks
        %kb = arith.index_cast %k : index to i64
        %bit = arith.shli %one64, %kb : i64
        %dd = memref.atomic_rmw ori %bit, %cnt[%cdn] : (i64, memref<?xi64>) -> i64
      }
      // a part run here may have been the last: look again before deciding to stop
      scf.condition(%more) %spn, %mine2 : index, i64
    } do {
    ^bb0(%sp: index, %mn: i64):
      scf.yield %sp, %mn : index, i64
    }
    %allmine = arith.cmpi eq, %wl#1, %all : i64
    %alone2 = arith.andi %alone, %allmine : i1
    scf.yield %alone2 : i1
  }
  return
}

// ==== frame ====
// The frame %p (step %t of sequence %wb) of the projection's partial sums.
%ptb = arith.muli %t, %cB : index
%p = arith.addi %ptb, %wb : index

// ==== state ====
%$state = stream.binding.subspan %b$i[%c0] : !stream.binding -> $type

// ==== task ====
// Part $part's task of step %t (sequence %wb): h_{t-1} into %h, its entries of S, the
// projection's and W_hh's rows, the gates of its units into hs[t] (and cs[t]).
%is$part = arith.cmpi eq, %k, %c$part : index
scf.if %is$part {
  scf.if %first {
    scf.for %u = %c0 to %cH step %cTL {
      %x = vector.load %m$h0[%wb, %u] : $h0_type, $V
      vector.store %x, %h[%u] : memref<${H}xf32>, $V
    }
  } else {
    scf.for %u = %c0 to %cH step %cTL {
      %x = vector.load %hs[%tp, %wb, %u] : $state_type, $V
      vector.store %x, %h[%u] : memref<${H}xf32>, $V
    }
  }
  %plo = arith.constant $lo : index
  %phi = arith.constant $hi : index
  $init
  $projection
  $products
  scf.for %u = %plo to %phi step %cGW {
    $gates
  }
}

// ==== init_rows ====
// S's entries of the part's units in one of its sections (acc's gates, acc_in).
%ilo$g = arith.constant $lo : index
%ihi$g = arith.constant $hi : index
scf.for %u = %ilo$g to %ihi$g step %cTL {
  %x = vector.load %m$init[%u] : $init_type, $V
  vector.store %x, %S[%u] : $SM, $V
}
