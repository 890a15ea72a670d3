"""Post-training calibration of int8 models (`calibrate`) and the entry point `quantize()`:
prepare, calibrate, optionally train (QAT, RSQ), freeze.

    from wispy.compress import quantize
    q = quantize(model, calib_batch, method="ptq", winograd="auto")    # calibration only: seconds

Calibration runs the calibration data three times through the model, each quantized layer fed
the float model's activations (the layers' `observer` hook): activation ranges, then the
Winograd-domain ranges of each candidate mode, then each candidate's output error against
float, from which the overflow rule picks every layer's mode (see `calibrate`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wispy.compress.quant import (QuantConv1d, QuantLinear, freeze, per_channel_scale, prepare, quant_layers,
                                  replace_module, save_quantized, winograd_weights)
from wispy.dialects.quant import WINOGRAD_M, direct_core, linear_core, matrices, winograd_core, winograd_tiles
from wispy.dialects.winograd import QMAX


class RangeObserver:
    """Collects |values| for a symmetric range: "max" (running max) or "pXX.X" (the XX.X-th
    percentile of |values|, from a bounded uniform subsample, seeded)."""

    def __init__(self, method: str = "max", channels: Optional[int] = None, max_samples: int = 2_000_000,
                 seed: int = 0):
        if method not in ("max", "bound") and not (method.startswith("p") and 0 < float(method[1:]) <= 100):
            raise ValueError(f"range method must be 'max' or 'pXX' (a percentile), not {method!r}")
        self.method, self.channels = method, channels
        self.max = None
        self.samples: list = []
        self.n = 0
        self.max_samples = max_samples
        self.gen = torch.Generator().manual_seed(seed)

    def update(self, a: Tensor):
        """a: |values|, flattened per channel when `channels` ([channels, n]) else any shape."""
        a = a.detach().abs().to(torch.float32)
        a = a.reshape(self.channels, -1) if self.channels else a.reshape(1, -1)
        mx = a.amax(dim=1)
        self.max = mx if self.max is None else torch.maximum(self.max, mx)
        if self.method != "max":
            k = min(a.shape[1], max(1, self.max_samples // 16))
            idx = torch.randint(0, a.shape[1], (k,), generator=self.gen) if k < a.shape[1] else slice(None)
            self.samples.append(a[:, idx])
            self.n += k

    def range(self) -> Tensor:
        if self.max is None:
            raise RuntimeError("RangeObserver saw no data")
        if self.method in ("max", "bound") or not self.samples:
            r = self.max
        else:
            s = torch.cat(self.samples, dim=1)
            if s.shape[1] > self.max_samples:
                s = s[:, torch.randperm(s.shape[1], generator=self.gen)[:self.max_samples]]
            q = float(self.method[1:]) / 100
            r = torch.stack([torch.quantile(row.double(), q).float() if row.numel() <= 16_000_000
                             else row.max() for row in s])
            r = torch.minimum(r, self.max)
        return torch.where(r > 0, r, torch.ones_like(r))


def _batches_of(calibration_data) -> list:
    """A tensor -> [it]; an iterable of tensors or of tuples (input first) -> its inputs."""
    if isinstance(calibration_data, Tensor):
        return [calibration_data]
    out = []
    for b in calibration_data:
        out.append(b[0] if isinstance(b, (tuple, list)) else b)
    if not out:
        raise ValueError("calibration_data is empty")
    return out


def _float_out(mod, x):
    """The layer's float output (its float weight), what every observer returns."""
    if isinstance(mod, QuantLinear):
        return F.linear(x, mod.weight, mod.bias)
    return F.conv1d(x, mod.weight, mod.bias, mod.stride, mod.padding, mod.dilation, mod.groups)


def _run(qmodel, batches, desc: str, progress: bool):
    from tqdm import tqdm

    for b in tqdm(batches, desc=desc, unit="batch", leave=False, disable=not progress):
        qmodel(b)


def _calibrate_activations(qmodel, layers: dict, batches, act_calib: str, progress: bool) -> None:
    """Pass 1: x_scale = range(|x|) / 127 of each quantized layer's input."""
    obs = {n: RangeObserver(act_calib) for n in layers}
    for n, mod in layers.items():
        mod.observer = (lambda o: (lambda m_, x: (o.update(x), _float_out(m_, x))[1]))(obs[n])
    _run(qmodel, batches, "calibrating activations", progress)
    for n, mod in layers.items():
        mod.set_x_scale(float(obs[n].range()[0]) / QMAX)


def _observe_v(m_, x, observers: dict):
    """Feeds the transformed input V = B^T z of each candidate mode to its observer."""
    x_q = torch.clamp(torch.round(x / m_.x_scale), -QMAX, QMAX)
    for c, ob in observers.items():
        BT = matrices(WINOGRAD_M[c])[0]
        z, _ = winograd_tiles(x_q, WINOGRAD_M[c], m_.kernel_size[0], m_.padding[0], m_.dilation[0])
        V = torch.matmul(z, BT.t())
        ob.update(V.reshape(-1, V.shape[-1]).t())
    return _float_out(m_, x)


def _calibrate_winograd_ranges(qmodel, layers: dict, info: dict, batches, v_calib: str, progress: bool) -> dict:
    """Pass 2: {layer: {mode: v_scale [m+2]}} for every Winograd candidate of every layer."""
    wobs = {}
    for n, mod in layers.items():
        cands = info[n]["candidates"] if info[n].get("auto") or mod.m else []
        cands = [c for c in cands if c == mod.mode or info[n].get("auto")]
        if not cands:
            mod.observer = lambda m_, x: _float_out(m_, x)
            continue
        wobs[n] = {c: RangeObserver(v_calib, channels=WINOGRAD_M[c] + 2) for c in cands}
        mod.observer = lambda m_, x, o=wobs[n]: _observe_v(m_, x, o)
    _run(qmodel, batches, "calibrating Winograd ranges", progress)

    def v_range(c, o):
        if v_calib == "bound":  # the worst case: |V_j| <= ||B^T row j||_1 * 127, never clamps
            return matrices(WINOGRAD_M[c])[0].abs().sum(1) * QMAX
        return o.range()

    return {n: {c: (v_range(c, o) * layers[n].x_scale / QMAX).to(torch.float32) for c, o in d.items()}
            for n, d in wobs.items()}


def _add(d: dict, key: str, num: float, den: float):
    a, b = d.get(key, (0.0, 0.0))
    d[key] = (a + num, b + den)


def _observe_errors(m_, x, errs: dict, v_scales: dict):
    """Adds the squared errors of direct int8 and of each Winograd candidate against the float
    output (and the fraction of clamped V values) to `errs`."""
    y = _float_out(m_, x)
    den = float(y.double().pow(2).sum())
    x_q = torch.clamp(torch.round(x / m_.x_scale), -QMAX, QMAX)
    xs = m_.x_scale
    if isinstance(m_, QuantLinear):
        wq, s = m_.quantized_weights()
        yd = linear_core(x_q, wq, xs * s, m_.bias)
    else:
        w = m_.weight
        s = per_channel_scale(w, (1, 2))
        wq = torch.clamp(torch.round(w / s.view(-1, 1, 1)), -QMAX, QMAX)
        yd = direct_core(x_q, wq, xs * s, m_.bias, m_.stride[0], m_.padding[0], m_.dilation[0], m_.groups)
    _add(errs, "direct", float((yd - y).double().pow(2).sum()), den)
    for c, vs in v_scales.items():
        mm = WINOGRAD_M[c]
        U = winograd_weights(m_.weight, mm)
        su = per_channel_scale(U, (1, 2))
        uq = torch.clamp(torch.round(U / su.view(su.shape[0], 1, 1, -1)), -QMAX, QMAX)
        st = {}
        yw = winograd_core(x_q, uq, xs / vs, su * vs.view(1, -1), m_.bias, mm, m_.padding[0],
                           m_.dilation[0], m_.kernel_size[0], m_.groups, stats=st)
        _add(errs, c, float((yw - y).double().pow(2).sum()), den)
        _add(errs, "clamp_" + c, float(st["clamped"].sum()), float(st["clamped"].numel()))
    return y


def _measure_errors(qmodel, layers: dict, v_scales: dict, batches, progress: bool) -> dict:
    """Pass 3: {layer: {candidate: (squared error, squared output)}} summed over the data."""
    errs = {n: {} for n in layers}
    for n, mod in layers.items():
        mod.observer = lambda m_, x, n=n: _observe_errors(m_, x, errs[n], v_scales.get(n, {}))
    _run(qmodel, batches, "measuring quantization error", progress)
    return errs


def _choose(mod, rec: dict, cal: dict, candidates, overflow_ratio) -> tuple[str, str]:
    """(mode, why) for a layer with Winograd candidates, by the overflow rule."""
    ok = [c for c in candidates if overflow_ratio is None or cal[f"ratio_{c}"] <= overflow_ratio]
    if rec.get("auto"):
        choice = next((c for c in ("f43", "f23") if c in ok), "direct")
        why = (f"auto: {choice}" if choice != "direct" else
               f"auto: Winograd overflows (error ratio > {overflow_ratio:g} x direct)")
        if choice == "f23":
            why += f" (F(4,3) overflows: error ratio {cal['ratio_f43']:.2f} > {overflow_ratio:g})"
        return choice, why
    choice = mod.mode if mod.mode in ok else "direct"
    why = "requested" if choice != "direct" else (
        f"{mod.mode} overflows (error ratio {cal['ratio_' + mod.mode]:.2f} > {overflow_ratio:g})")
    return choice, why


def _decide(qmodel, n: str, mod, rec: dict, errs: dict, v_scales: dict, overflow_ratio) -> dict:
    """Settles layer `n`'s mode (rebuilding it if it changes) and returns its calibration record."""
    e = {k: (a / b if b > 0 else 0.0) for k, (a, b) in errs.items()}
    cal = {"x_scale": mod._x_scale_value, "err_direct": e.get("direct")}
    for c in ("f43", "f23"):
        if c in e:
            cal[f"err_{c}"] = e[c]
            cal[f"ratio_{c}"] = e[c] / max(e["direct"], 1e-30)
            cal[f"clamp_{c}"] = e["clamp_" + c]
            cal[f"v_scale_{c}"] = [float(v) for v in v_scales[c]]
    if mod.m is not None or rec.get("auto"):
        choice, why = _choose(mod, rec, cal, v_scales or {}, overflow_ratio)
        if choice != mod.mode:
            new = _rebuild(mod, choice)
            replace_module(qmodel, n, new)
            mod = new
        if mod.m is not None:
            mod.v_scale.copy_(v_scales[mod.mode])
        rec["mode"], rec["why"] = choice, why
    if mod.m is not None:
        cal["v_scale"] = [float(v) for v in mod.v_scale]
    rec["calib"] = cal
    return cal


@torch.no_grad()
def calibrate(qmodel: nn.Module, calibration_data, *, act_calib: str = "max", v_calib: Optional[str] = None,
              overflow_ratio: Optional[float] = 4.0, progress: bool = False) -> dict:
    """Post-training calibration of a `prepare`d model on `calibration_data` (a tensor or an
    iterable of input batches), in three passes over it, each layer fed the float model's
    activations:

    1. x_scale = range(|x|) / 127 of each quantized layer's input (`act_calib`: "max" or a
       percentile "p99.99");
    2. for every Winograd candidate mode of a conv (F(4,3), F(2,3)), the range of the input
       transform V = B^T z (z the quantized input tiles) per Winograd position j:
       v_scale[j] = x_scale * range(|V_j|) / 127 (`v_calib`, default `act_calib`; "bound" takes
       the worst case instead, range = 127 * sum_l |B^T[j, l]|, which can never clamp);
    3. the layer's relative output error ||y_q - y||^2 / ||y||^2 against float, for direct int8
       and each Winograd candidate, and the fraction of V values the int8 requantization clamps.

    The overflow rule: the transform widens the range, so V needs a coarser int8 step than the
    input (or saturates); a Winograd mode "overflows" when its error exceeds `overflow_ratio`
    times the direct int8 error of the same layer on the calibration data (the precision lost
    to the widened range, measured). An "auto" layer takes F(4,3) unless it overflows, then
    F(2,3) unless it overflows, then direct; an explicitly requested mode that overflows falls
    back to direct too (overflow_ratio=None disables the rule). Returns per-layer stats (also
    stored in `qmodel.wispy_quant["layers"][name]["calib"]`)."""
    batches = _batches_of(calibration_data)
    layers = quant_layers(qmodel)
    info = qmodel.wispy_quant["layers"]
    v_calib = v_calib or act_calib
    was_training = qmodel.training
    qmodel.eval()
    try:
        _calibrate_activations(qmodel, layers, batches, act_calib, progress)
        v_scales = _calibrate_winograd_ranges(qmodel, layers, info, batches, v_calib, progress)
        errs = _measure_errors(qmodel, layers, v_scales, batches, progress)
    finally:
        for mod in layers.values():
            mod.observer = None
    qmodel.train(was_training)
    out = {n: _decide(qmodel, n, mod, info[n], errs[n], v_scales.get(n, {}), overflow_ratio)
           for n, mod in layers.items()}
    qmodel.wispy_quant.update(act_calib=act_calib, v_calib=v_calib, overflow_ratio=overflow_ratio,
                              calibration_batches=len(batches))
    return out


def _rebuild(mod: QuantConv1d, mode: str) -> QuantConv1d:
    new = QuantConv1d.from_float(mod, mode)
    new.set_x_scale(mod._x_scale_value)
    new.train(mod.training)
    return new


def quantize(model: nn.Module, calibration_data, method: str = "ptq", winograd: Union[str, dict] = "auto", *,
             corpus_dir=None, epochs: float = 1, teacher: Optional[nn.Module] = None, layers="all",
             act_calib: str = "max", v_calib: Optional[str] = None, overflow_ratio: Optional[float] = 4.0,
             lr: float = 3e-4, range_lr: float = 1e-2, kd_weight: Optional[float] = None,
             batch_size: int = 16, max_batches: Optional[int] = None, out_dir=None, resume: bool = True,
             seed: int = 0, progress: bool = True, strip: bool = True, data: Optional[dict] = None) -> nn.Module:
    """Returns an int8 copy of `model` (the float model is not changed) that `compile_model`
    compiles to int8 code: its quantized layers run the `wispy::` custom ops.

    method      "ptq": calibration only (`calibrate`); "qat": then quantization-aware training
                with CTC on `corpus_dir` (fake-quant in the direct or Winograd domain, with the
                calibrated ranges held); "rsq": Range-Scaled Quantization: Winograd-domain QAT
                whose Winograd-domain ranges (v_scale) are trained too, plus knowledge
                distillation from the float model (`wispy.compress.rsq`)
    winograd    "auto" | "off" | "f23" | "f43" | {layer pattern: mode} (see `prepare`)
    calibration_data  a tensor [B, C, T] (or the model's input layout) or an iterable of batches
    epochs      training epochs over the corpus' train split (fractions allowed: `max_batches`
                per epoch is then scaled); qat/rsq only
    teacher     the distillation teacher (default: `model` itself, float); rsq only
    kd_weight   weight of the distillation term (default 0 for qat, 1 for rsq)
    act_calib / v_calib / overflow_ratio   see `calibrate`
    lr / range_lr   Adam learning rates of the weights and of the RSQ ranges (cosine decay)
    out_dir     training checkpoints (qat_last.pt per epoch, resumable; best.pt; quantized.pt)
    strip       drop the float weights from the result (keeps only int8 tensors, scales, biases)
    The result carries `wispy_quant` (see the module docstring) and `wispy_config` (the float
    model's, when it has one)."""
    if method not in ("ptq", "qat", "rsq"):
        raise ValueError(f"method must be ptq, qat or rsq, not {method!r}")
    if method != "ptq" and corpus_dir is None and data is None:
        raise ValueError(f"method={method!r} trains: pass corpus_dir")
    q = prepare(model, winograd, layers)
    q.wispy_quant["method"] = method
    calibrate(q, calibration_data, act_calib=act_calib, v_calib=v_calib, overflow_ratio=overflow_ratio,
              progress=progress)
    if method in ("qat", "rsq"):
        from wispy.compress.rsq import qat_train

        rsq = method == "rsq"
        info = qat_train(q, corpus_dir, epochs=epochs, lr=lr, range_lr=range_lr, learn_range=rsq,
                         teacher=(teacher if teacher is not None else model) if rsq or kd_weight else None,
                         kd_weight=kd_weight if kd_weight is not None else (1.0 if rsq else 0.0),
                         batch_size=batch_size, max_batches=max_batches, out_dir=out_dir, resume=resume,
                         seed=seed, progress=progress, data=data)
        q.wispy_quant["training"] = {k: v for k, v in info.items() if k != "model"}
    freeze(q, strip=strip)
    for n, mod in quant_layers(q).items():
        rec = q.wispy_quant["layers"][n]
        rec["mode"] = mod.mode
        if mod.m is not None:
            rec.setdefault("calib", {})["v_scale_final"] = [float(v) for v in mod.v_scale]
    if out_dir is not None:
        save_quantized(q, Path(out_dir) / "quantized.pt")
    return q


