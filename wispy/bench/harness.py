"""`wispy bench`: wispy against what users run today, side by side in one run.

Peers: `wispy` (this compiler), `iree` (the same model through IREE with its default
flags and no wispy passes), `torch` (PyTorch eager) and `onnxruntime` (ONNX Runtime on
the model exported by torch.onnx). Calls are interleaved round-robin so machine noise
hits every peer alike; the table reports medians and each peer's time relative to
wispy's. For arm64, wall time under qemu means nothing: instructions per inference
are counted under qemu instead (deterministic to ~0.01%).
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from wispy._timing import SETTLE_S, time_in_blocks, time_round_robin

PEERS = ("wispy", "iree", "torch", "onnxruntime")


@dataclass
class PeerResult:
    name: str
    median_ms: Optional[float] = None
    p10_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    instructions: Optional[int] = None
    max_abs_err: Optional[float] = None
    compile_s: Optional[float] = None
    note: str = ""


@dataclass
class BenchResult:
    model: str
    target: str
    inputs: list
    peers: list = field(default_factory=list)

    def peer(self, name: str) -> Optional[PeerResult]:
        return next((p for p in self.peers if p.name == name), None)

    def ratio(self, name: str) -> Optional[float]:
        """How many times faster wispy is than `name` (>1: wispy faster)."""
        w, o = self.peer("wispy"), self.peer(name)
        if not w or not o:
            return None
        if w.median_ms and o.median_ms:
            return o.median_ms / w.median_ms
        if w.instructions and o.instructions:
            return o.instructions / w.instructions
        return None

    def table(self) -> str:
        cpu = any(p.median_ms for p in self.peers)
        head = f"{self.model} on {self.target}, inputs {', '.join(self.inputs)}"
        w = max([12] + [len(p.name) for p in self.peers])  # the name column
        if cpu:
            lines = [head, f"{'peer':<{w}} {'median ms':>10} {'p10-p90 ms':>15} {'wispy speedup':>14} "
                           f"{'max |err|':>10}  note"]
            for p in self.peers:
                r = self.ratio(p.name)
                rng = f"{p.p10_ms:.2f}-{p.p90_ms:.2f}" if p.p10_ms is not None else "-"
                med = f"{p.median_ms:.2f}" if p.median_ms is not None else "-"
                err = f"{p.max_abs_err:.1e}" if p.max_abs_err is not None else "-"
                lines.append(f"{p.name:<{w}} {med:>10} {rng:>15} {(f'{r:.2f}x' if r else '-'):>14} {err:>10}  {p.note}")
        else:
            lines = [head, f"{'peer':<{w}} {'insns/inference':>16} {'wispy ratio':>12}  note"]
            for p in self.peers:
                r = self.ratio(p.name)
                ins = f"{p.instructions:,}" if p.instructions else "-"
                lines.append(f"{p.name:<{w}} {ins:>16} {(f'{r:.2f}x' if r else '-'):>12}  {p.note}")
        return "\n".join(lines)


def _onnx_runner(model, args, work: Path):
    import onnxruntime as ort

    path = work / "model.onnx"
    with torch.no_grad():
        # The TorchScript exporter maps nn.GRU/nn.LSTM to ONNX's fused GRU/LSTM ops,
        # ONNX Runtime's fast path for recurrent models.
        torch.onnx.export(model, tuple(args), str(path), dynamo=False, opset_version=17)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    return lambda: sess.run(None, feeds)[0]


def run_benchmark(model, args: Sequence, *, target: str = "host", cpu_features: str = "",
                  repeat: int = 20, peers: Optional[Sequence[str]] = None, name: str = "model",
                  json_out: Optional[str] = None, echo: bool = True,
                  precompiled: Optional[dict] = None, blocks: bool = False,
                  warm: bool = False) -> BenchResult:
    """`precompiled` maps peer name -> CompiledModel already built for `target`. `blocks`:
    time each runtime's calls together (`time_in_blocks`) instead of interleaved. `warm`:
    each timed call right after an untimed call of the same runtime (after the idle), as
    in a stream of calls; otherwise each call follows 0.1 s idle, one call now and then."""
    from wispy.targets import Target

    peers = list(peers or PEERS)
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        from wispy.errors import WispyError

        raise WispyError(f"unknown peer(s) {unknown}: choose among {', '.join(PEERS)}")
    args = tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args)
    model = model.eval() if isinstance(model, torch.nn.Module) else model
    with torch.no_grad():
        ref = model(*args)
    ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).numpy()
    np_args = [a.numpy() for a in args]
    result = BenchResult(name, target, ["x".join(map(str, a.shape)) for a in np_args])
    say = print if echo else (lambda *a, **k: None)

    tgt = Target.parse(target, cpu_features=cpu_features)
    compiled = _compile_peers(model, args, tgt, target, cpu_features, peers, precompiled, say)
    with tempfile.TemporaryDirectory(prefix="wispy-bench-") as tmp:
        work = Path(tmp)
        if tgt.runs_here == "host":
            _time_on_host(result, compiled, model, args, np_args, ref, peers, work, repeat=repeat, blocks=blocks,
                          warm=warm, say=say)
        elif tgt.name == "arm64":
            _count_on_arm64(result, compiled, np_args, ref, work, say)
        else:
            say(f"bench: {tgt.name} modules cannot be timed on this machine; compiled only")
    if echo:
        print(result.table())
    if json_out:
        Path(json_out).write_text(json.dumps(asdict(result), indent=2))
    return result


def _compile_peers(model, args: tuple, tgt, target: str, cpu_features: str, peers: list,
                   precompiled: Optional[dict], say: Callable) -> dict:
    """{peer: (CompiledModel, compile seconds or None)}: the `precompiled` ones, and wispy's
    and plain IREE's builds for `tgt` when among `peers`."""
    from wispy.compiler.api import compile_model
    from wispy.targets import Target

    compiled = {k: (v, None) for k, v in (precompiled or {}).items()}
    for peer in ("wispy", "iree"):
        if peer not in peers or peer in compiled:
            continue
        say(f"bench: compiling with {peer} for {tgt} ...", flush=True)
        t = time.perf_counter()
        if peer == "wispy":
            # wispy's best host configuration: the faster of IREE's two CPU drivers,
            # timed on this input (not counted as compile time).
            cm = compile_model(model, args, target=tgt, progress=False,
                               host_driver="auto" if tgt.runs_here == "host" else "local-task")
        else:
            plain = Target.parse(target, cpu_features=cpu_features)
            plain = Target(plain.name, plain.cpu_features, plain.vulkan_target, plain.triple, (), tuned=False)
            # No wispy pass in any phase, so no export-time choice of wispy's either (the
            # recurrent kernel is chosen only with its pass in the torch pipeline): the first
            # version of this left the torch phase's passes on, and a pruned GRU's "iree"
            # build ran wispy's recurrent kernel.
            cm = compile_model(model, args, target=plain, torch_pipeline="", wispy_pipeline="",
                               dispatch_pipeline="", block_sparse=False, progress=False)
        compiled[peer] = (cm, time.perf_counter() - t - cm.timings.get("host_driver", 0.0))
    return compiled


def _time_on_host(result: BenchResult, compiled: dict, model, args: tuple, np_args: list, ref: np.ndarray,
                  peers: list, work: Path, *, repeat: int, blocks: bool, warm: bool, say: Callable) -> None:
    """Checks every peer's output against `ref` and times the peers on this machine into `result`."""
    runners: dict[str, Callable] = {}
    for peer, (cm, _) in compiled.items():
        out = cm.run(*np_args)[0]
        result.peers.append(PeerResult(peer, max_abs_err=float(np.abs(out - ref).max()),
                                       compile_s=compiled[peer][1], note=cm.host_driver))
        runners[peer] = (lambda cm=cm: cm.run(*np_args))
    if "torch" in peers:

        def run_torch():
            with torch.no_grad():
                return model(*args)

        result.peers.append(PeerResult("torch", max_abs_err=0.0, note="eager"))
        runners["torch"] = run_torch
    if "onnxruntime" in peers:
        try:
            fn = _onnx_runner(model, args, work)
            result.peers.append(PeerResult("onnxruntime", max_abs_err=float(np.abs(fn() - ref).max())))
            runners["onnxruntime"] = fn
        except Exception as e:  # the ONNX exporter rejects some models
            result.peers.append(PeerResult("onnxruntime", note=f"export failed: {str(e)[:60]}"))
    how = "one runtime after another" if blocks else "round-robin"
    idle = f"each after {SETTLE_S:g} s idle" + (" and an untimed call" if warm else "")
    say(f"bench: timing {', '.join(runners)} {how}, {repeat} calls each, {idle} ...", flush=True)
    times = (time_in_blocks if blocks else time_round_robin)(runners, repeat, warm=warm)
    for p in result.peers:
        if p.name in times:
            t = np.array(times[p.name])
            p.median_ms, p.p10_ms, p.p90_ms = (float(np.median(t)), float(np.percentile(t, 10)),
                                               float(np.percentile(t, 90)))


def _count_on_arm64(result: BenchResult, compiled: dict, np_args: list, ref: np.ndarray, work: Path,
                    say: Callable) -> None:
    """Counts every peer's instructions under qemu-aarch64 into `result` (its output checked on the host)."""
    from wispy.runtime.arm64 import count_instructions_arm64

    for peer, (cm, cs) in compiled.items():
        say(f"bench: counting {peer}'s instructions under qemu ...", flush=True)
        vmfb = cm.save(work / f"{peer}.vmfb")
        out = cm.run(*np_args)[0]
        n = count_instructions_arm64(vmfb, np_args)
        result.peers.append(PeerResult(peer, instructions=n, compile_s=cs,
                                       max_abs_err=float(np.abs(out - ref).max()),
                                       note="qemu-aarch64 count"))


def run_streaming_benchmark(model, x, *, chunk: int, target: str = "host", repeat: int = 10,
                            frame_ms: float = 10.0, name: str = "model", echo: bool = True) -> dict:
    """Streams `x` (one utterance, [1, frames, feats] or [1, feats, frames]) through a compiled
    step function `chunk` frames at a time, then flushes it; reports per-chunk latency, the
    real-time factor (processing time / audio time, frames of `frame_ms`), the model's
    lookahead and the largest difference from the whole-utterance output."""
    from wispy.compiler.streaming import compile_streaming

    x = torch.as_tensor(x)
    say = print if echo else (lambda *a, **k: None)
    say(f"bench: compiling {name} as a streaming step function for {target} ...", flush=True)
    sm = compile_streaming(model, x, target=target, progress=False)
    ax = sm.time_axis
    frames = x.shape[ax]
    with torch.no_grad():
        whole = model(x)
    whole = (whole[0] if isinstance(whole, (tuple, list)) else whole).numpy()
    xn = x.numpy()
    pieces = [np.take(xn, range(i, min(i + chunk, frames)), axis=ax) for i in range(0, frames, chunk)]
    totals, per_chunk = [], []
    for r in range(repeat + 1):
        s = sm.session()
        outs, t0 = [], time.perf_counter()
        for p in pieces:
            t = time.perf_counter()
            outs.append(s.feed(p))
            per_chunk.append((time.perf_counter() - t) * 1e3)
        outs.append(s.flush())
        if r == 0:  # warm-up, and the equality check
            err = float(np.abs(np.concatenate(outs, sm.output_time_axis) - whole).max())
            per_chunk.clear()
            continue
        totals.append((time.perf_counter() - t0) * 1e3)
    total = float(np.median(totals))
    res = {"model": name, "target": target, "frames": frames, "chunk": chunk, "total_ms": total,
           "chunk_ms_median": float(np.median(per_chunk)), "chunk_ms_p90": float(np.percentile(per_chunk, 90)),
           "rtf": total / (frames * frame_ms), "lookahead_frames": sm.latency_frames,
           "max_abs_err_vs_whole": err}
    say(f"{name} streaming on {target}: {frames} frames in chunks of {chunk} "
        f"({chunk * frame_ms:.0f} ms of audio each)\n"
        f"  per chunk {res['chunk_ms_median']:.2f} ms median, {res['chunk_ms_p90']:.2f} ms p90; "
        f"whole utterance {total:.1f} ms (with the flush); real-time factor {res['rtf']:.4f}\n"
        f"  lookahead {sm.latency_frames} frames ({sm.latency_frames * frame_ms:.0f} ms); "
        f"max |streamed - whole-utterance output| = {err:.1e}")
    return res
