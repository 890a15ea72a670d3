"""wispy-recurrent-kernel against PyTorch: GRU and LSTM layers whose recurrence runs as
one hand-written dispatch (block-sparse or small dense recurrent matrices), compiled and run on the host and
under qemu on arm64, and when the export leaves a layer to the loop."""
import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.compiler.pipeline import DEFAULT_TORCH_PIPELINE
from wispy.targets import Target
from wispy.compress import prune_block_sparse
from wispy.passes.recurrent_kernel import kernel_predicate

ATOL = 2e-5


def _kernel_remarks(cm) -> list:
    return [r for r in cm.remarks if "wispy-recurrent-kernel" in r and "lowered" in r]


def _check(model, x, target="host", **kw):
    cm = wispy.compile_model(model, (x,), target=target, explain=True, progress=False, **kw)
    want = model(x)
    got = cm(x)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    for w, g in zip(want, got):
        w = w[0] if isinstance(w, tuple) else w
        np.testing.assert_allclose(np.asarray(g), w.detach().numpy(), atol=ATOL, rtol=1e-4)
    return cm


class WithState(nn.Module):
    """An nn.GRU or nn.LSTM called with its initial state: (y, h_n) or (y, h_n, c_n)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h0, c0=None):
        if c0 is None:
            return self.rnn(x, h0)
        y, (h, c) = self.rnn(x, (h0, c0))
        return y, h, c


def _check_with_state(rnn, x, *state, **kw):
    """`rnn` given its initial state, compiled: every output as PyTorch's, each layer in
    the kernel."""
    model = WithState(rnn).eval()
    cm = wispy.compile_model(model, (x, *state), explain=True, progress=False, **kw)
    want = model(x, *state)
    got = cm(x, *state)
    assert len(got) == len(want)
    for w, g in zip(want, got):
        np.testing.assert_allclose(np.asarray(g), w.detach().numpy(), atol=ATOL, rtol=1e-4)
    assert len(_kernel_remarks(cm)) == 2, cm.remarks


class TwoLayerGRU(nn.Module):
    def __init__(self, hidden=64, layers=2, bidirectional=False, bias=True):
        super().__init__()
        self.gru = nn.GRU(24, hidden, layers, bidirectional=bidirectional, bias=bias)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), 10)

    def forward(self, x):
        y, _ = self.gru(x)
        return self.out(y)


def _pruned(model, block="cols:4", prune="rows", rate=4.0, uniform=True, layers=("gru.weight_hh*",)):
    torch.manual_seed(0)
    prune_block_sparse(model, rate=rate, block=block, prune=prune, layers=list(layers), uniform=uniform)
    return model.eval()


@pytest.mark.parametrize("target", ["host", pytest.param("arm64", marks=pytest.mark.arm64)])
def test_column_strips_two_layers(target):
    """RTMobile's pattern (rows pruned in 4 column strips) in both matrices: every layer in
    the kernel, the input projection's partial sums added inside it."""
    torch.manual_seed(1)
    model = _pruned(TwoLayerGRU(), layers=["gru.weight_hh*", "gru.weight_ih*"])
    x = torch.randn(7, 1, 24)
    cm = _check(model, x, target)
    assert len(_kernel_remarks(cm)) == 2, cm.remarks
    assert any("partial sums added in the kernel" in r for r in _kernel_remarks(cm)), cm.remarks


@pytest.mark.parametrize("target", ["host", pytest.param("arm64", marks=pytest.mark.arm64)])
def test_tiles_gathered_columns_and_buckets(target):
    """Tiles with rows and columns removed, survivors differing per block: the kernel
    gathers h per column and runs several buckets; W_ih dense (the kernel reads gi)."""
    torch.manual_seed(2)
    model = _pruned(TwoLayerGRU(hidden=32, layers=1), block="tiles:16x8", prune="both", rate=6.0,
                    uniform=False)
    x = torch.randn(6, 1, 24)
    cm = _check(model, x, target)
    assert _kernel_remarks(cm) and "W_ih dense, one matmul" in _kernel_remarks(cm)[0], cm.remarks


@pytest.mark.arm64
@pytest.mark.parametrize("option", ["", "wispy-recurrent-kernel{wide-loads=0 columns=4}"])
def test_arm64_strips_of_twelve_columns(option):
    """Strips 12 columns wide (hidden 48) on arm64: 8 columns of h an iteration do not
    divide them, so those blocks take 4; both with the wide loads and without them."""
    torch.manual_seed(3)
    model = _pruned(TwoLayerGRU(hidden=48, layers=1), rate=3.0)
    x = torch.randn(9, 1, 24)
    pipe = DEFAULT_TORCH_PIPELINE.replace("wispy-recurrent-kernel", option or "wispy-recurrent-kernel", 1)
    assert "wispy-recurrent-kernel" in DEFAULT_TORCH_PIPELINE
    cm = _check(model, x, "arm64", torch_pipeline=pipe)
    assert _kernel_remarks(cm), cm.remarks


def test_bidirectional_batch_and_no_bias():
    """Both directions (the reverse one reads the frames backwards), two sequences (one
    workgroup each), no biases."""
    torch.manual_seed(3)
    model = _pruned(TwoLayerGRU(hidden=32, layers=1, bidirectional=True, bias=False), layers=["gru.*"],
                    block="tiles:16x8", prune="both", rate=6.0, uniform=False)
    x = torch.randn(5, 2, 24)
    cm = _check(model, x)
    assert len(_kernel_remarks(cm)) == 2, cm.remarks


def test_initial_state_and_final_state():
    """nn.GRU called with h0, both of its outputs compared."""
    torch.manual_seed(4)
    gru = nn.GRU(16, 32, 2, batch_first=True)
    prune_block_sparse(gru, rate=4.0, block="cols:4", prune="rows", layers="rnn", uniform=True)
    _check_with_state(gru, torch.randn(1, 6, 16), torch.randn(2, 1, 32))


def test_modes():
    """auto takes a small dense matrix (it stays in cache; test_predicate has the large
    ones), on takes it too, off takes none."""
    torch.manual_seed(5)
    dense = TwoLayerGRU(hidden=32, layers=1).eval()
    x = torch.randn(4, 1, 24)
    auto = _kernel_remarks(_check(dense, x))
    assert auto and "W_hh 96x32 dense" in auto[0], auto
    assert _kernel_remarks(_check(dense, x, recurrent_kernel="on"))
    assert not _kernel_remarks(_check(dense, x, recurrent_kernel="off"))
    assert not _kernel_remarks(_check(_pruned(TwoLayerGRU(hidden=32, layers=1)), x, recurrent_kernel="off"))


def test_predicate(monkeypatch):
    """The export-time choice: CPU targets only, hidden sizes the kernel takes, a valid mode;
    dense matrices up to 1 MiB, or 16 MiB where two workers or more will run them."""
    import wispy.targets as targets

    monkeypatch.setattr(targets, "host_cores", lambda: 1)
    w = torch.nn.Parameter(torch.zeros(96, 32))
    with torch.no_grad():
        w[:, :8] = 1.0  # one strip of four kept: 4x less work
    assert kernel_predicate(Target.parse("host"))(w)
    assert kernel_predicate(Target.parse("arm64"))(w)
    assert kernel_predicate(Target.parse("vulkan")) is None
    assert kernel_predicate(Target.parse("host"), "off") is None
    ones = torch.nn.Parameter(torch.ones(96, 32))
    assert kernel_predicate(Target.parse("host"))(ones)     # dense, 12 KB: stays in cache
    large = torch.nn.Parameter(torch.ones(3 * 304, 304))     # dense, 1.1 MB: the loop
    assert not kernel_predicate(Target.parse("host"))(large)
    assert kernel_predicate(Target.parse("host"), "on")(large)
    assert kernel_predicate(Target.parse("host"), "on")(ones)
    assert not kernel_predicate(Target.parse("host"), "on")(torch.nn.Parameter(torch.ones(30, 10)))  # 10 units
    assert not kernel_predicate(Target.parse("host"), "on")(torch.ones(96, 32))  # computed, not a parameter
    with pytest.raises(ValueError, match="recurrent_kernel must be one of auto, on, off"):
        kernel_predicate(Target.parse("host"), "fast")
    assert kernel_predicate(Target.parse("host"), workers=2)(large)    # two workers asked for
    monkeypatch.setattr(targets, "host_cores", lambda: 2)
    assert kernel_predicate(Target.parse("host"))(large)               # the host's two workers
    assert not kernel_predicate(Target.parse("host"), workers=1)(large)
    assert not kernel_predicate(Target.parse("arm64"))(large)          # one worker there
    huge = torch.nn.Parameter(torch.ones(3 * 1216, 1216))              # dense, 17.7 MB: the loop
    assert not kernel_predicate(Target.parse("host"))(huge)


def test_dynamic_frames_keep_the_loop():
    """A dynamic number of frames: the loop, not the kernel (its sizes are static)."""
    torch.manual_seed(6)
    model = _pruned(TwoLayerGRU(hidden=32, layers=1))
    x = torch.randn(8, 1, 24)
    frames = torch.export.Dim("frames", min=2, max=64)
    cm = wispy.compile_model(model, (x,), dynamic_shapes={"x": {0: frames}}, explain=True, progress=False)
    assert not _kernel_remarks(cm)
    np.testing.assert_allclose(np.asarray(cm(x[:5])), model(x[:5]).detach().numpy(), atol=ATOL, rtol=1e-4)


def test_armv7_compiles_and_vulkan_keeps_the_loop():
    """armv7 takes the kernel (smaller tiles for its 16 NEON registers; no runtime here to
    run it); Vulkan keeps the loop (a single serial workgroup is no GPU kernel)."""
    torch.manual_seed(7)
    model = _pruned(TwoLayerGRU(hidden=32, layers=1))
    x = torch.randn(5, 1, 24)
    armv7 = wispy.compile_model(model, (x,), target="armv7", explain=True, progress=False)
    assert _kernel_remarks(armv7) and b"embedded-elf-arm_32" in armv7.vmfb
    vulkan = wispy.compile_model(model, (x,), target="vulkan", explain=True, progress=False)
    assert not _kernel_remarks(vulkan)


@pytest.mark.parametrize("target,driver", [("host", "local-task"), ("host", "local-sync"),
                                           pytest.param("arm64", None, marks=pytest.mark.arm64)])
def test_two_workers(target, driver):
    """workers=2: the units cut in two parts, two workgroups per sequence claiming each
    step's parts; run concurrently (local-task) or one after the other (local-sync, qemu:
    the first does every part), the result is the same."""
    torch.manual_seed(8)
    model = _pruned(TwoLayerGRU(hidden=64, layers=2), layers=["gru.weight_hh*", "gru.weight_ih_l1"])
    x = torch.randn(9, 2, 24)
    kw = {"host_driver": driver} if driver else {}
    cm = _check(model, x, target, torch_pipeline="builtin.module(wispy-recurrent-kernel{workers=2})", **kw)
    assert len(_kernel_remarks(cm)) == 2 and all("of 2 workers" in r for r in _kernel_remarks(cm)), cm.remarks
    for _ in range(3):  # the claim words start from zero at every call
        np.testing.assert_allclose(np.asarray(cm(x)), model(x).detach().numpy(), atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("block,prune,rate", [("cols:4", "rows", 2.5), ("tiles:48x32", "both", 2.5)])
def test_workers_run_late_parts_twice(block, prune, rate):
    """steal-spins=0: a worker that finds nothing to claim at once runs any part not yet
    marked done, so parts often run twice, concurrently (both write the same h). Three
    workers over 96 units, groups of 2 tiles: column strips give each part a bucket of
    whole groups and one of a shorter last group, and layer 1's projection partial sums
    cut by part; tiles give several buckets of gathered columns and gi from a matmul."""
    torch.manual_seed(9)
    model = _pruned(TwoLayerGRU(hidden=96, layers=2), block=block, prune=prune, rate=rate, uniform=False,
                    layers=["gru.weight_hh*", "gru.weight_ih_l1"])
    x = torch.randn(11, 1, 24)
    cm = _check(model, x, recurrent_kernel="on",
                torch_pipeline="builtin.module(wispy-recurrent-kernel{workers=3 steal-spins=0 tiles=2})")
    assert len(_kernel_remarks(cm)) == 2 and all("of 3 workers" in r for r in _kernel_remarks(cm)), cm.remarks
    # strips: layer 1's W_ih block-sparse enough for its partial sums; tiles: a dense matmul
    assert any("partial sums added in the kernel" in r for r in _kernel_remarks(cm)) == (block == "cols:4")
    want = model(x).detach().numpy()
    for _ in range(20):
        np.testing.assert_allclose(np.asarray(cm(x)), want, atol=ATOL, rtol=1e-4)


def test_workers_fall_back_when_parts_are_not_whole_tiles():
    """hidden 32 in 3 parts is no whole number of row tiles: one worker, said in the remark."""
    torch.manual_seed(10)
    model = _pruned(TwoLayerGRU(hidden=32, layers=1))
    cm = _check(model, torch.randn(4, 1, 24), torch_pipeline="builtin.module(wispy-recurrent-kernel{workers=3})")
    assert _kernel_remarks(cm) and not any("workers" in r for r in _kernel_remarks(cm)), cm.remarks


def test_recurrent_workers_option():
    """compile_model(recurrent_workers=2) is the pipeline's workers=2; bad counts and a
    pipeline that already sets the pass's options are refused with a WispyError."""
    from wispy.errors import WispyError

    torch.manual_seed(11)
    model = _pruned(TwoLayerGRU(hidden=64, layers=1))
    x = torch.randn(6, 1, 24)
    cm = _check(model, x, recurrent_workers=2)
    assert _kernel_remarks(cm) and all("of 2 workers" in r for r in _kernel_remarks(cm)), cm.remarks
    for bad in (0, 2.5, True, 33, "two"):
        with pytest.raises(WispyError, match="recurrent_workers must be 'auto' or a whole number from 1 to 32"):
            wispy.compile_model(model, (x,), recurrent_workers=bad, progress=False)
    with pytest.raises(WispyError, match="without options of its own"):
        wispy.compile_model(model, (x,), recurrent_workers=2, progress=False,
                            torch_pipeline="builtin.module(wispy-recurrent-kernel{snake=false})")



def test_auto_workers_follow_the_l2(monkeypatch):
    """Without a count, the host takes more workers for a W_hh over a core's L2 (as many
    as each part's fitting needs, at most the cores, parts of whole row tiles) and two for
    one within L2 (dense or block-sparse); other targets keep their one."""
    import wispy.targets as targets
    from wispy.kernels import recurrent as rnn_kernel
    from wispy.passes.recurrent_kernel import auto_workers

    host, arm = Target.parse("host"), Target.parse("arm64")
    shape = rnn_kernel.shape_for(host)
    monkeypatch.setattr(targets, "host_l2_bytes", lambda: 1 << 20)
    monkeypatch.setattr(targets, "host_cores", lambda: 2)
    assert auto_workers(1 << 20, 1024, host, shape) == (2, "a block-sparse W_hh within L2: short steps, halved")
    assert auto_workers(200_000, 128, host, shape, dense=True) == (2, "a dense W_hh within L2: short steps, halved")
    assert auto_workers(200_000, 16, host, shape, dense=True) == (1, "")       # one row tile
    w, why = auto_workers(1_260_000, 1024, host, shape)
    assert w == 2 and "W_hh 1.26 MB, over a core's 1024 KiB L2" in why
    assert auto_workers(12_600_000, 1024, host, shape)[0] == 2         # at most the cores
    assert auto_workers(1_260_000, 1024, arm, rnn_kernel.shape_for(arm)) == (1, "")
    assert auto_workers(1_260_000, 16, host, shape) == (1, "")         # one row tile: no parts
    monkeypatch.setattr(targets, "host_cores", lambda: 8)
    assert auto_workers(3_000_000, 1024, host, shape)[0] == 2          # 3 parts are not whole tiles
    assert auto_workers(3_500_000, 1024, host, shape)[0] == 4
    monkeypatch.setattr(targets, "host_cores", lambda: 1)
    assert auto_workers(12_600_000, 1024, host, shape) == (1, "")
    assert auto_workers(200_000, 128, host, shape, dense=True) == (1, "")


def test_auto_workers_split_a_matrix_over_the_l2(monkeypatch):
    """compile_model's default on a host whose L2 is smaller than a layer's W_hh: two
    workers, the reason in the remark, outputs as PyTorch's; recurrent_workers=1 keeps one."""
    import wispy.targets as targets

    monkeypatch.setattr(targets, "host_l2_bytes", lambda: 16 << 10)
    monkeypatch.setattr(targets, "host_cores", lambda: 2)
    torch.manual_seed(12)
    model = _pruned(TwoLayerGRU(hidden=128, layers=1), rate=2.0)   # W_hh 384x128 kept half: 98 KB
    x = torch.randn(7, 1, 24)
    remarks = _kernel_remarks(_check(model, x))
    assert remarks and all("of 2 workers (W_hh 0.10 MB, over a core's 16 KiB L2)" in r for r in remarks), remarks
    remarks = _kernel_remarks(_check(model, x, recurrent_workers=1))
    assert remarks and not any("workers" in r for r in remarks), remarks

def test_compile_model_rejects_an_unknown_mode():
    from wispy.errors import WispyError

    with pytest.raises(WispyError, match="unknown recurrent_kernel 'fast': choose among auto, on, off"):
        wispy.compile_model(TwoLayerGRU(hidden=32, layers=1).eval(), (torch.randn(3, 1, 24),),
                            recurrent_kernel="fast", progress=False)


def test_wide_loads_are_for_arm64():
    """wide-loads=1 asks for AArch64's ld1: another target is told so, not handed to LLVM."""
    model = _pruned(TwoLayerGRU(hidden=32, layers=1))
    pipe = DEFAULT_TORCH_PIPELINE.replace("wispy-recurrent-kernel", "wispy-recurrent-kernel{wide-loads=1}", 1)
    with pytest.raises(wispy.WispyError, match="wide-loads=1 is AArch64's ld1 .arm64 targets., not host's"):
        wispy.compile_model(model, (torch.randn(4, 1, 24),), torch_pipeline=pipe, progress=False)


# -- LSTM layers --------------------------------------------------------------------------

class TwoLayerLSTM(nn.Module):
    def __init__(self, hidden=64, layers=2, bidirectional=False, bias=True, proj_size=0):
        super().__init__()
        self.lstm = nn.LSTM(24, hidden, layers, bidirectional=bidirectional, bias=bias, proj_size=proj_size)
        self.out = nn.Linear((proj_size or hidden) * (2 if bidirectional else 1), 10)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.out(y)


def _pruned_lstm(model, **kw):
    kw.setdefault("layers", ("lstm.weight_hh*",))
    return _pruned(model, **kw)


@pytest.mark.parametrize("target", ["host", pytest.param("arm64", marks=pytest.mark.arm64)])
def test_lstm_column_strips_two_layers(target):
    """An LSTM in RTMobile's pattern in both matrices: every layer in the kernel (gates i,
    f, g, o; c carried through cs), the projection's partial sums added inside it."""
    torch.manual_seed(21)
    model = _pruned_lstm(TwoLayerLSTM(), layers=["lstm.weight_hh*", "lstm.weight_ih*"])
    cm = _check(model, torch.randn(7, 1, 24), target)
    remarks = _kernel_remarks(cm)
    assert len(remarks) == 2 and all("lowered an LSTM layer" in r for r in remarks), cm.remarks
    assert any("partial sums added in the kernel" in r for r in remarks), cm.remarks


def test_lstm_tiles_bidirectional_batch_no_bias():
    """Tiles with rows and columns removed (gathered columns, several buckets), W_ih dense
    (the kernel reads gi's four gates), both directions, two sequences, no biases."""
    torch.manual_seed(22)
    model = _pruned_lstm(TwoLayerLSTM(hidden=32, layers=1, bidirectional=True, bias=False),
                         block="tiles:16x8", prune="both", rate=6.0, uniform=False)
    cm = _check(model, torch.randn(6, 2, 24))
    remarks = _kernel_remarks(cm)
    assert len(remarks) == 2 and all("W_ih dense, one matmul" in r for r in remarks), cm.remarks


@pytest.mark.parametrize("workers", [1, 2])
def test_lstm_initial_and_final_states(workers):
    """nn.LSTM called with (h0, c0): the output and both final states, on one worker and
    on two (c read back from the step before, by whichever worker runs the part)."""
    torch.manual_seed(23)
    lstm = nn.LSTM(16, 32, 2, batch_first=True)
    prune_block_sparse(lstm, rate=4.0, block="cols:4", prune="rows", layers="rnn", uniform=True)
    _check_with_state(lstm, torch.randn(1, 6, 16), torch.randn(2, 1, 32), torch.randn(2, 1, 32),
                      recurrent_workers=workers)


@pytest.mark.parametrize("target,driver", [("host", "local-task"), ("host", "local-sync"),
                                           pytest.param("arm64", None, marks=pytest.mark.arm64)])
def test_lstm_two_workers(target, driver):
    """An LSTM's units cut in two parts, claimed per step by two workgroups a sequence,
    concurrently or one after the other: PyTorch's outputs either way."""
    torch.manual_seed(24)
    model = _pruned_lstm(TwoLayerLSTM(hidden=64), layers=["lstm.weight_hh*", "lstm.weight_ih_l1"])
    x = torch.randn(9, 2, 24)
    kw = {"host_driver": driver} if driver else {}
    cm = _check(model, x, target, torch_pipeline="builtin.module(wispy-recurrent-kernel{workers=2})", **kw)
    assert len(_kernel_remarks(cm)) == 2 and all("of 2 workers" in r for r in _kernel_remarks(cm)), cm.remarks


def test_lstm_workers_run_late_parts_twice():
    """steal-spins=0 on three workers: parts often run twice, concurrently; a second run
    reads the same c_{t-1} from cs and writes the same c_t and h_t."""
    torch.manual_seed(25)
    model = _pruned_lstm(TwoLayerLSTM(hidden=96), rate=2.5, uniform=False,
                         layers=["lstm.weight_hh*", "lstm.weight_ih_l1"])
    x = torch.randn(11, 1, 24)
    cm = _check(model, x, recurrent_kernel="on",
                torch_pipeline="builtin.module(wispy-recurrent-kernel{workers=3 steal-spins=0 tiles=2})")
    assert len(_kernel_remarks(cm)) == 2 and all("of 3 workers" in r for r in _kernel_remarks(cm)), cm.remarks
    want = model(x).detach().numpy()
    for _ in range(20):
        np.testing.assert_allclose(np.asarray(cm(x)), want, atol=ATOL, rtol=1e-4)


def test_lstm_with_projection_keeps_the_loop():
    """proj_size: h is a projection of what the kernel computes, so the layer stays a loop."""
    torch.manual_seed(26)
    model = TwoLayerLSTM(hidden=32, layers=1, proj_size=16).eval()
    cm = _check(model, torch.randn(5, 1, 24), recurrent_kernel="on")
    assert not _kernel_remarks(cm), cm.remarks


def test_lstm_predicate():
    """LSTM recurrent matrices (4H x H) are taken like GRU ones (3H x H); other shapes not."""
    ones = torch.nn.Parameter(torch.ones(128, 32))     # an LSTM's, dense, 16 KB
    assert kernel_predicate(Target.parse("host"))(ones)
    assert not kernel_predicate(Target.parse("host"), "on")(torch.nn.Parameter(torch.ones(64, 32)))


def test_block_sparse_off_runs_the_kernel_dense():
    """block_sparse=False: the pruned model's matrices count as dense, zeros included; a
    small one still takes the kernel (dense, the pass's dense=true), a large one the loop."""
    torch.manual_seed(27)
    model = _pruned(TwoLayerGRU(hidden=64, layers=1), layers=["gru.weight_hh*", "gru.weight_ih*"])
    x = torch.randn(6, 1, 24)
    remarks = _kernel_remarks(_check(model, x, block_sparse=False))
    assert remarks and all("W_hh 192x64 dense; W_ih dense, one matmul" in r for r in remarks), remarks
    remarks = _kernel_remarks(_check(model, x, block_sparse=False, recurrent_workers=1))
    assert remarks and "W_hh 192x64 dense" in remarks[0] and "workers" not in remarks[0], remarks
    large = torch.nn.Parameter(torch.zeros(3 * 1216, 1216))  # 17.7 MB dense
    with torch.no_grad():
        large[:, :304] = 1.0  # 4x less work if skipped
    assert kernel_predicate(Target.parse("host"))(large)
    assert not kernel_predicate(Target.parse("host"), sparse=False)(large)
