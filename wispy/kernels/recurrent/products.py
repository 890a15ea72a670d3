"""The products of a step: W_hh's packed buckets times h_{t-1} (a group of row tiles at a
time, scattered into S), and the projection's partial sums added into S."""
from __future__ import annotations

from dataclasses import dataclass

from wispy.kernels.recurrent.shape import KernelShape, accumulator_sets
from wispy.kernels.templates import render

R = "recurrent.mlir"
LD1X4 = "llvm.aarch64.neon.ld1x4.v4f32.p0"
_Q4 = "!llvm.struct<(vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)>"


def projection_rows(item: str, count: str, mems: list, prod: int, prow: int, SM: str, pidx: int = -1) -> str:
    """Adds frame %p's partial sums of block `item` of a projection bucket (operand `prod`,
    [nb, frames, r]) into S, `count` of them, each at its row's place (operand `prow`);
    with `pidx`, the i-th sum is prod's row pidx[item, i] (a part's rows, see plan_parts)."""
    part_row = render(R, "part_row", pidx=pidx, item=item, pidx_type=mems[pidx]) if pidx >= 0 else ""
    return render(R, "projection_rows", count=count, part_row=part_row, prod=prod, item=item,
                  row="%pxx" if pidx >= 0 else "%i", prod_type=mems[prod], prow=prow, prow_type=mems[prow],
                  SM=SM)


def projection_bucket(k: int, nb: int, rows: int, count: str, add: str) -> str:
    """The loop over a projection bucket's nb blocks, `rows` rows each (in `count`), `add`
    adding each block's sums."""
    return render(R, "projection_bucket", k=k, nb=nb, count=count, rows=rows, add=add)


def bucket_products(k: int, bk, at: int, mems: list, shape: KernelShape, H: int, SM: str) -> str:
    """W_hh's bucket k (operands at, at + 1, at + 2: values, rows, cols), every block and
    group, their sums added into S. Every other step (%snake) walks the blocks and groups
    backwards: what the last step read last is still in cache (a matrix a little larger
    than L2 is not streamed in full)."""
    nb, ng, c, _, _ = bk.values.shape
    grp = _Group(k, bk, shape, H, SM, f"%m{at}", f"%m{at + 1}", f"%m{at + 2}", *mems[at: at + 3])
    return render(R, "bucket", k=k, nb=nb, ng=ng, c=c, uj=bk.uj, nb1=nb - 1, ng1=ng - 1, group=grp.text())


@dataclass
class _Group:
    """One group of the bucket's G row tiles (G as packed: the target's, or fewer for the
    last rows, see pack_rows) of W_hh's bucket k (block %blk, group %grp): its sums over
    the block's columns of h, scattered into S (rows of one block are distinct). mv, mr,
    mc: the values', rows' and cols' memrefs, of types vals, rows, cols."""
    k: int
    bk: object
    shape: KernelShape
    H: int
    SM: str
    mv: str
    mr: str
    mc: str
    vals: str
    rows: str
    cols: str

    def __post_init__(self):
        self.G = self.bk.values.shape[3]
        # Accumulators: one vector<tl> per tile, or with ld1x4 four vector<4> per tile (the
        # registers the load fills), so each fma is one fmla on a loaded register.
        self.wide = self.shape.ld1x4 and self.shape.tl == 16
        self.nq = 4 if self.wide else 1
        self.V = "vector<4xf32>" if self.wide else f"vector<{self.shape.tl}xf32>"
        self.nacc = self.G * self.nq
        # K sets of accumulators, column u adding into set u % K: G * nq chains of fmas
        # alone would each wait on the last fma's latency (see KernelShape.chains).
        self.K = accumulator_sets(self.nacc, self.bk.uj, self.shape.chains)

    def text(self) -> str:
        n = self.nacc * self.K
        zero = "%zq" if self.wide else "%zv"
        inits = ", ".join(f"%a{i} = {zero}" for i in range(n))
        types = ", ".join([self.V] * n)
        wide = ""
        if self.wide:
            _, ng, c, _, _ = self.bk.values.shape
            wide = render(R, "group_ld1x4", mv=self.mv, vals=self.vals, k=self.k, ng=ng,
                          bytes=c * self.G * self.shape.tl * 4)
            inits += ", %p0 = %gptr"
            types += ", i64"
        acc = [f"%a{i}" for i in range(n)]
        columns, ptr = self._columns(acc)
        strip = render(R, "strip", mc=self.mc, cols=self.cols, H=self.H, uj=self.bk.uj) if self.bk.strips else ""
        sums, set_sums = self._set_sums()
        return render(R, "group", wide=wide, n=n + int(self.wide), k=self.k, inits=inits, types=types,
                      strip=strip, columns=columns, yields=", ".join(acc + ([ptr] if self.wide else [])),
                      set_sums=set_sums, G=self.G, scatter=[self._scatter(g, sums) for g in range(self.G)])

    def _columns(self, acc: list) -> tuple:
        """The loop body: uj columns of h, each times the G tiles' column (`acc`, the
        accumulators, updated to the last fma of each); and the pointer after them."""
        out, ptr = [], "%p0"
        for u in range(self.bk.uj):
            if self.bk.strips:
                out.append(render(R, "column_strip", u=u, uj=self.bk.uj, V=self.V))
            else:
                out.append(render(R, "column_gather", u=u, mc=self.mc, cols=self.cols, H=self.H, V=self.V))
            for g in range(self.G):
                if self.wide:
                    out.append(render(R, "tile_ld1x4", g=g, u=u, ptr=ptr, intrinsic=LD1X4, Q4=_Q4))
                    ptr = f"%pn{g}_{u}"
                    out += self._quarters(acc, g, u)
                else:
                    i = (u % self.K) * self.nacc + g
                    out.append(render(R, "tile_fma", g=g, u=u, mv=self.mv, vals=self.vals, V=self.V, acc=acc[i]))
                    acc[i] = f"%n{g}_{u}"
        return out, ptr

    def _quarters(self, acc: list, g: int, u: int) -> list[str]:
        """ld1x4: the fmas of tile g's four loaded registers at column u."""
        out = []
        for q in range(self.nq):
            i = (u % self.K) * self.nacc + g * self.nq + q
            out.append(render(R, "quarter_fma", i=i, u=u, g=g, q=q, Q4=_Q4, acc=acc[i], V=self.V))
            acc[i] = f"%n{i}_{u}"
        return out

    def _set_sums(self) -> tuple:
        """(each accumulator's sum over the K sets, the adds)."""
        sums = [f"%s#{i}" for i in range(self.nacc)]
        out = []
        for i in range(self.nacc):
            for kk in range(1, self.K):
                out.append(render(R, "set_sum", i=i, kk=kk, sum=sums[i], other=f"%s#{kk * self.nacc + i}", V=self.V))
                sums[i] = f"%sum{i}_{kk}"
        return sums, out

    def _scatter(self, g: int, sums: list) -> str:
        """Tile g's TL sums added into S at their rows."""
        tl = self.shape.tl
        lanes = tl // self.nq
        out = [render(R, "scatter_lane", p=f"{g}_{lane}", g=g, lane=lane, mr=self.mr, rows=self.rows,
                      sum=sums[g * self.nq + lane // lanes], at=lane % lanes, V=self.V, SM=self.SM)
               for lane in range(tl)]
        return render(R, "scatter_tile", g=g, lanes=out)
