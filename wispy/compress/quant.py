"""int8 quantization of Conv1d and Linear layers, the training side: the modules, preparing a
float model (BatchNorm folding, choosing Winograd modes), freezing, saving and loading.
Calibration and `quantize()`, the entry point, are in `wispy.compress.calibrate`; the
`wispy::` ops the frozen modules call (wispy::qconv1d, winograd_qconv1d, qlinear), their
arithmetic and their lowering are in `wispy.dialects.quant`.

    from wispy.compress import quantize, save_quantized, load_quantized
    q = quantize(model, calib_batch, method="ptq", winograd="auto")    # calibration only: seconds
    q = quantize(model, calib_batch, method="rsq", corpus_dir="out/corpus", epochs=2, out_dir="out/q")
    y = q(x)                                       # the exact int8 arithmetic (eval mode)
    torch.export.export(q, (x,))                   # one wispy::qconv1d / winograd_qconv1d / qlinear node per layer
    save_quantized(q, "q.pt"); q = load_quantized("q.pt")

The arithmetic is specified in `wispy.dialects.winograd` (numpy, int64: the contract) and
summarized in `wispy.dialects.quant`. Weights are per output channel (and per Winograd
position), symmetric, int8 in [-127, 127]; activations per tensor.

Module states. `QuantConv1d` / `QuantLinear` subclass nn.Conv1d / nn.Linear (so
`wispy.models.registry.output_lengths`, `model_config` and friends keep working). While training they
hold float weights and compute a *fake-quant* forward: the same arithmetic with the integers
carried in float32 and straight-through estimators at every rounding (so gradients reach the
float weights and, for RSQ, the Winograd-domain range). `freeze()` stores the int8 tensors
(w_q / u_q and their scales); `strip()` drops the float weights. A frozen module's eval forward
calls the custom op. `quantize()` returns frozen, stripped modules. BatchNorm layers that follow
a convolution are folded into it first (and become nn.Identity).

What the model records: `model.wispy_quant` = {"method", "winograd", "act_calib", ...,
"layers": {name: {"kind", "mode" ("direct" | "f23" | "f43"), "candidates" (the Winograd modes
legal for the layer), "why" (the reason for the mode), "calib": {"x_scale", "v_scale",
"err_direct", "err_f23", "err_f43", "ratio_f23", "ratio_f43", "clamp_f23", "clamp_f43"}}}};
`save_quantized` writes it beside the state dict. The compiler lowers each layer as its mode
says (the numbers depend on it); a different per-target choice is made by quantizing with
`winograd={name: mode}`.

Modes and the overflow rule (`wispy.compress.calibrate`). "auto" (the default) proposes F(4,3)
for every dense (groups 1), stride-1 Conv1d of at least 3 taps; calibration measures, on the calibration data, each
candidate's output error against float next to direct int8's, and a Winograd mode whose error
exceeds `overflow_ratio` (4) times the direct int8 error, i.e. one that loses more than 1 bit
(6 dB) of the layer's output SQNR to the range the transform adds, "overflows": the layer takes
F(2,3) instead, or direct int8 if that overflows too. Strided, 1-2 tap and grouped convolutions
and Linear layers are direct. An explicit "f23"/"f43" applies the rule to that mode only
(`overflow_ratio=None` keeps the requested mode whatever the error).
"""
from __future__ import annotations

import copy
import fnmatch
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wispy.dialects.quant import WINOGRAD_M, direct_core, linear_core, matrices, round_ste, winograd_core
from wispy.dialects.winograd import QMAX, pieces
from wispy.errors import ModelLoadError
from wispy.models.loading import load_torch_file

MODES = ("direct", "f23", "f43")


# ---------------------------------------------------------------------------------------------
# Quantizing weights (float tensors holding integers; the shared arithmetic is the ops')


def quantize_ste(x: Tensor, scale: Tensor) -> Tensor:
    """clamp(roundeven(x / scale), -127, 127), integer-valued, float; STE gradient inside the
    range, zero outside (and the LSQ gradient for `scale` when it requires grad)."""
    return torch.clamp(round_ste(x / scale), -QMAX, QMAX)


def winograd_weights(w: Tensor, m: int) -> Tensor:
    """U [F, C/g, P, m+2] = G g per 3-tap piece (float32, differentiable)."""
    Fo, Cg, K = w.shape
    P = pieces(K)
    wp = F.pad(w, (0, 3 * P - K)).reshape(Fo, Cg, P, 3)
    _, G, _ = matrices(m, w.dtype)
    return torch.matmul(wp, G.t())


def per_channel_scale(w: Tensor, dims) -> Tensor:
    """max|w| / 127 over `dims` (detached; 1 where the slice is all zeros), float32."""
    a = w.detach().abs().amax(dim=dims).to(torch.float32) / QMAX
    return torch.where(a > 0, a, torch.ones_like(a))


def _f32(x: float) -> float:
    """x rounded to float32, as a Python float."""
    return float(np.float32(x))


# ---------------------------------------------------------------------------------------------
# Modules


class _QuantMixin:
    """What QuantConv1d and QuantLinear share: the activation scale (a float32 buffer mirrored as
    a Python float for the op), observing (calibration), frozen/stripped states."""

    def _init_quant(self):
        self.register_buffer("x_scale", torch.tensor(1.0))
        self._x_scale_value = 1.0
        self.frozen = False
        self.observer = None  # a callable(module, x) during calibration
        self.register_load_state_dict_post_hook(lambda mod, keys: mod._sync_scale())

    def _sync_scale(self):
        self._x_scale_value = _f32(float(self.x_scale))
        self.x_scale.fill_(self._x_scale_value)

    def set_x_scale(self, s: float):
        with torch.no_grad():
            self.x_scale.fill_(_f32(s))
        self._sync_scale()

    def forward(self, x: Tensor) -> Tensor:
        """Observing (calibration), the int8 custom op once frozen (in eval, or stripped), else
        the same arithmetic from the float weights (training)."""
        if self.observer is not None:
            return self.observer(self, x)
        if self.frozen and (not self.training or self.weight is None):
            return self.forward_int8(x)
        return self.forward_fake(x)

    def strip(self):
        """Drops the float weight (the frozen int8 tensors remain); bias stays float32."""
        if not self.frozen:
            raise RuntimeError("strip() before freeze() would lose the weights")
        if isinstance(getattr(self, "weight", None), nn.Parameter):
            del self.weight
            self.register_parameter("weight", None)
        return self


class QuantConv1d(_QuantMixin, nn.Conv1d):
    """An int8 nn.Conv1d: mode "direct" (any stride, padding, dilation, groups) or Winograd
    "f23" / "f43" (stride 1). Buffers: x_scale; direct: w_q int8 [F, C/g, K], w_scale [F];
    Winograd: u_q int8 [F, C/g, P, m+2], u_scale [F, m+2], v_scale [m+2]. RSQ adds the
    parameter `v_log_range` [m+2] while training: v_scale = x_scale * exp(v_log_range)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, mode: str = "direct"):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if isinstance(self.padding, str) or self.padding_mode != "zeros":
            raise ValueError("QuantConv1d needs an integer zero padding")
        if mode != "direct" and self.stride[0] != 1:
            raise ValueError(f"Winograd mode {mode} needs stride 1, not {self.stride[0]}")
        self.mode = mode
        self._init_quant()
        Fo, Cg, K = self.weight.shape
        if mode == "direct":
            self.register_buffer("w_q", torch.zeros(Fo, Cg, K, dtype=torch.int8))
            self.register_buffer("w_scale", torch.ones(Fo))
        else:
            n = self.m + 2
            self.register_buffer("u_q", torch.zeros(Fo, Cg, pieces(K), n, dtype=torch.int8))
            self.register_buffer("u_scale", torch.ones(Fo, n))
            self.register_buffer("v_scale", torch.ones(n))
        self.v_log_range = None

    @property
    def m(self) -> Optional[int]:
        return WINOGRAD_M.get(self.mode)

    @classmethod
    def from_float(cls, conv: nn.Conv1d, mode: str = "direct") -> "QuantConv1d":
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0],
                conv.dilation[0], conv.groups, conv.bias is not None, mode)
        with torch.no_grad():
            q.weight.copy_(conv.weight)
            if conv.bias is not None:
                q.bias.copy_(conv.bias)
        return q.to(conv.weight.device)

    # -- scales ---------------------------------------------------------------------------

    def current_v_scale(self) -> Tensor:
        """v_scale: the learned range (RSQ) when present, else the buffer."""
        if self.v_log_range is not None:
            return self.x_scale * torch.exp(self.v_log_range)
        return self.v_scale

    def enable_range_training(self):
        """RSQ: makes the Winograd-domain scale a trained parameter, v_scale = x_scale *
        exp(v_log_range), initialised from the calibrated v_scale."""
        if self.m is None:
            return None
        with torch.no_grad():
            init = torch.log(self.v_scale / self.x_scale)
        self.v_log_range = nn.Parameter(init.clone())
        return self.v_log_range

    def disable_range_training(self):
        if self.v_log_range is not None:
            with torch.no_grad():
                self.v_scale.copy_(self.current_v_scale().to(torch.float32))
            self.v_log_range = None

    def quantized_weights(self) -> tuple[Tensor, Tensor]:
        """(integer-valued float q, scale) from the float weight: w_q, w_scale [F] (direct) or
        u_q, u_scale [F, m+2] (Winograd). Straight-through in training."""
        w = self.weight
        if self.m is None:
            s = per_channel_scale(w, (1, 2))
            return quantize_ste(w, s.view(-1, 1, 1)), s
        U = winograd_weights(w, self.m)
        s = per_channel_scale(U, (1, 2))  # [F, m+2]
        return quantize_ste(U, s.view(s.shape[0], 1, 1, -1)), s

    @torch.no_grad()
    def freeze(self):
        """Stores the int8 weights and their scales from the float weights (and the learned
        v_scale, for RSQ); eval forward then runs the custom op."""
        q, s = self.quantized_weights()
        if self.m is None:
            self.w_q.copy_(q.to(torch.int8))
            self.w_scale.copy_(s)
        else:
            self.u_q.copy_(q.to(torch.int8))
            self.u_scale.copy_(s)
            self.disable_range_training()
        self.frozen = True
        return self

    # -- forward (dispatched by _QuantMixin.forward) -------------------------------------------

    def forward_int8(self, x: Tensor) -> Tensor:
        """The custom op on the frozen int8 tensors."""
        if self.m is None:
            return torch.ops.wispy.qconv1d(x, self.w_q, self.w_scale, self._x_scale_value, self.bias,
                                           self.stride[0], self.padding[0], self.dilation[0], self.groups)
        return torch.ops.wispy.winograd_qconv1d(x, self.u_q, self.u_scale, self.v_scale, self._x_scale_value,
                                                self.bias, self.m, self.padding[0], self.dilation[0],
                                                self.kernel_size[0], self.groups)

    def forward_fake(self, x: Tensor) -> Tensor:
        """The same arithmetic from the float weights, straight-through (training)."""
        xs = self.x_scale
        x_q = quantize_ste(x, xs)
        q, s = self.quantized_weights()
        if self.m is None:
            return direct_core(x_q, q, xs * s, self.bias, self.stride[0], self.padding[0], self.dilation[0],
                               self.groups, exact=not self.training)
        vs = self.current_v_scale()
        return winograd_core(x_q, q, xs / vs, s * vs.view(1, -1), self.bias, self.m, self.padding[0],
                             self.dilation[0], self.kernel_size[0], self.groups, exact=not self.training)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode}, x_scale={self._x_scale_value:.4g}" + \
            (", frozen" if self.frozen else "")


class QuantLinear(_QuantMixin, nn.Linear):
    """An int8 nn.Linear (direct): buffers x_scale, w_q int8 [F, C], w_scale [F]."""

    mode = "direct"
    m = None

    def __init__(self, in_features, out_features, bias=True, mode: str = "direct"):
        super().__init__(in_features, out_features, bias=bias)
        if mode != "direct":
            raise ValueError("QuantLinear is direct int8 only")
        self._init_quant()
        self.register_buffer("w_q", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("w_scale", torch.ones(out_features))

    @classmethod
    def from_float(cls, lin: nn.Linear, mode: str = "direct") -> "QuantLinear":
        q = cls(lin.in_features, lin.out_features, lin.bias is not None)
        with torch.no_grad():
            q.weight.copy_(lin.weight)
            if lin.bias is not None:
                q.bias.copy_(lin.bias)
        return q.to(lin.weight.device)

    def quantized_weights(self):
        s = per_channel_scale(self.weight, (1,))
        return quantize_ste(self.weight, s.view(-1, 1)), s

    @torch.no_grad()
    def freeze(self):
        q, s = self.quantized_weights()
        self.w_q.copy_(q.to(torch.int8))
        self.w_scale.copy_(s)
        self.frozen = True
        return self

    def forward_int8(self, x: Tensor) -> Tensor:
        return torch.ops.wispy.qlinear(x, self.w_q, self.w_scale, self._x_scale_value, self.bias)

    def forward_fake(self, x: Tensor) -> Tensor:
        q, s = self.quantized_weights()
        xs = self.x_scale
        return linear_core(quantize_ste(x, xs), q, xs * s, self.bias, exact=not self.training)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", x_scale={self._x_scale_value:.4g}" + (", frozen" if self.frozen else "")


QUANT_TYPES = (QuantConv1d, QuantLinear)


def quant_layers(model: nn.Module) -> dict:
    """{name: module} of the quantized layers."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QUANT_TYPES)}


# ---------------------------------------------------------------------------------------------
# Preparing a float model: BatchNorm folding, choosing modes, swapping modules


def fold_batchnorm(model: nn.Module) -> list[str]:
    """Folds every BatchNorm1d that directly follows a Conv1d inside an nn.Sequential into the
    convolution (eval statistics) and replaces it with nn.Identity. Returns the folded names."""
    folded = []
    for pname, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if type(conv) is nn.Conv1d and isinstance(bn, nn.BatchNorm1d) and bn.track_running_stats:
                with torch.no_grad():
                    inv = (bn.running_var + bn.eps).rsqrt()
                    g = bn.weight * inv if bn.affine else inv
                    beta = bn.bias if bn.affine else torch.zeros_like(g)
                    b0 = conv.bias if conv.bias is not None else torch.zeros_like(g)
                    conv.weight.mul_(g.view(-1, 1, 1))
                    new_b = (b0 - bn.running_mean) * g + beta
                    if conv.bias is None:
                        conv.bias = nn.Parameter(new_b)
                    else:
                        conv.bias.copy_(new_b)
                parent._modules[b] = nn.Identity()
                folded.append(f"{pname}.{b}" if pname else b)
    return folded


def winograd_candidates(conv: nn.Conv1d) -> list[str]:
    """The Winograd modes legal for a Conv1d: stride 1 and at least 3 taps (any dilation,
    groups, padding); F(4,3) first."""
    if conv.stride[0] != 1 or conv.kernel_size[0] < 3 or isinstance(conv.padding, str):
        return []
    return ["f43", "f23"]


def legal_modes(conv: nn.Conv1d, per_layer: bool = False) -> list[str]:
    """"direct" and the Winograd modes `conv` may take: stride 1 and >= 3 taps, and groups 1
    unless the modes were given layer by layer (a dict)."""
    if conv.groups != 1 and not per_layer:
        return ["direct"]
    return ["direct"] + winograd_candidates(conv)


def _selected(name: str, layers) -> bool:
    if layers in (None, "all"):
        return True
    if isinstance(layers, str):
        layers = [layers]
    return any(fnmatch.fnmatchcase(name, p) for p in layers)


def _requested_mode(name: str, conv: nn.Module, winograd) -> Union[str, None]:
    """The mode asked for a layer: "auto", "direct", "f23" or "f43" (None: auto)."""
    if isinstance(winograd, dict):
        for pat, mode in winograd.items():
            if fnmatch.fnmatchcase(name, pat):
                return mode
        return "direct"
    if winograd in (None, "off", False):
        return "direct"
    return winograd


def replace_module(model: nn.Module, name: str, new: nn.Module):
    parent = model
    *path, last = name.split(".")
    for p in path:
        parent = getattr(parent, p)
    setattr(parent, last, new)


def prepare(model: nn.Module, winograd: Union[str, dict] = "auto", layers="all", fold_bn: bool = True) -> nn.Module:
    """A deep copy of `model` with BatchNorm folded and every selected nn.Conv1d / nn.Linear
    replaced by its quantized module (not yet calibrated). `winograd`: "auto" (F(4,3) for every
    dense (groups 1) stride-1 conv of >= 3 taps, settled by calibration's overflow rule), "f43"
    or "f23" (that mode for those layers), "off" (all direct), or {name pattern: mode} per layer
    (a pattern's mode may be "auto"; layers matching no pattern are direct; explicit modes
    apply to grouped convolutions too)."""
    if isinstance(winograd, str) and winograd not in ("auto", "off", "f23", "f43", "direct"):
        raise ValueError(f"winograd must be auto, off, f23, f43 or a dict, not {winograd!r}")
    q = copy.deepcopy(model).eval()
    for p in q.parameters():
        p.requires_grad_(True)
    folded = fold_batchnorm(q) if fold_bn else []
    info = {}
    for name, mod in list(q.named_modules()):
        if type(mod) not in (nn.Conv1d, nn.Linear) or not _selected(name, layers):
            continue
        if type(mod) is nn.Linear:
            replace_module(q, name, QuantLinear.from_float(mod))
            info[name] = {"kind": "linear", "mode": "direct", "candidates": [], "why": "linear layer"}
            continue
        cands = winograd_candidates(mod)
        want = _requested_mode(name, mod, winograd)
        legal = legal_modes(mod, isinstance(winograd, dict))
        if want == "auto":
            mode = legal[1] if len(legal) > 1 else "direct"
            why = "auto (pending calibration)" if len(legal) > 1 else _why_direct(mod)
        elif want in ("f23", "f43"):
            mode, why = (want, "requested") if want in legal else ("direct", _why_direct(mod))
        else:
            mode, why = "direct", "requested" if want == "direct" and winograd not in ("off", None) else "winograd off"
        replace_module(q, name, QuantConv1d.from_float(mod, mode))
        info[name] = {"kind": "conv1d", "mode": mode, "candidates": cands, "why": why,
                      "auto": want == "auto" and mode != "direct"}
    q.wispy_quant = {"winograd": winograd if not isinstance(winograd, dict) else dict(winograd),
                     "folded_batchnorm": folded, "layers": info}
    if hasattr(model, "wispy_config"):
        q.wispy_config = copy.deepcopy(model.wispy_config)
    return q


def with_winograd(qmodel: nn.Module, winograd: Union[str, dict]) -> nn.Module:
    """A copy of a quantized model with its int8 Conv1d layers lowered as `winograd` asks:
    "off" (every layer direct int8), "f23" or "f43" (every stride-1 layer of 3 or more
    taps, groups 1, in that Winograd form; the others direct), or a dict of layer-name
    patterns to modes; "auto" returns the model as quantized. A layer whose mode changes is
    re-quantized from its float weight at the same activation scale; a new Winograd layer
    takes the worst-case range of the transformed input (it never clamps; RSQ or
    calibration would tighten it). Raises ValueError, naming the layer, when its float
    weight was stripped, and when the model has no int8 Conv1d layer at all."""
    if winograd == "auto":
        return qmodel
    if not isinstance(winograd, dict) and winograd not in ("off", "f23", "f43"):
        raise ValueError(f"winograd must be 'auto', 'off', 'f23', 'f43', 'measure' (compile_model) or a dict, "
                         f"not {winograd!r}")
    convs = [(n, m) for n, m in qmodel.named_modules() if isinstance(m, QuantConv1d)]
    if not convs:
        raise ValueError(f"winograd={winograd!r} chooses how int8 Conv1d layers are computed, and this model "
                         "has none: quantize it first (wispy.compress.quantize)")
    q = copy.deepcopy(qmodel)
    info = getattr(q, "wispy_quant", {}).get("layers", {})
    for name, mod in convs:
        want = _requested_mode(name, mod, winograd)
        mode = want if want in legal_modes(mod, isinstance(winograd, dict)) else "direct"
        if mode == mod.mode:
            continue
        if getattr(mod, "weight", None) is None:
            raise ValueError(f"int8 layer {name!r} is {mod.mode} and its float weight was stripped, so it cannot "
                             f"become {mode}: quantize with winograd={winograd!r}, or with strip=False to let "
                             "compile_model choose")
        new = QuantConv1d.from_float(mod, mode)
        new.set_x_scale(float(mod.x_scale))
        if new.m is not None:
            with torch.no_grad():
                new.v_scale.copy_(matrices(new.m)[0].abs().sum(1) * new.x_scale)
        new.freeze()
        replace_module(q, name, new.eval())
        if name in info:
            info[name] = {**info[name], "mode": mode, "why": f"compile_model(winograd={winograd!r})"}
    return q


def _why_direct(conv: nn.Conv1d) -> str:
    if conv.stride[0] != 1:
        return f"stride {conv.stride[0]} (Winograd needs stride 1)"
    if conv.kernel_size[0] < 3:
        return f"{conv.kernel_size[0]} tap(s) (Winograd F(m,3) needs >= 3)"
    if conv.groups != 1:
        return f"groups={conv.groups} (auto keeps grouped/depthwise convolutions direct)"
    return "direct"


# ---------------------------------------------------------------------------------------------
# Freezing, saving, loading


def freeze(qmodel: nn.Module, strip: bool = True) -> nn.Module:
    """Stores every quantized layer's int8 tensors (`QuantConv1d.freeze`) and, with `strip`,
    drops the float weights; the model is left in eval mode."""
    for mod in quant_layers(qmodel).values():
        mod.freeze()
        if strip:
            mod.strip()
    return qmodel.eval()


def save_quantized(qmodel: nn.Module, path, **extra) -> None:
    """Writes {"model": state_dict, "config": wispy_config, "quant": wispy_quant, **extra}."""
    from wispy.training.ctc import save_checkpoint as _atomic_save

    obj = {"model": qmodel.state_dict(), "config": getattr(qmodel, "wispy_config", None),
           "quant": getattr(qmodel, "wispy_quant", None), **extra}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(obj, Path(path))


def load_quantized(path_or_ckpt, model: Optional[nn.Module] = None) -> nn.Module:
    """Rebuilds a quantized model saved by `save_quantized` (frozen, eval mode). The float
    architecture comes from `model` or the checkpoint's config (`wispy.models.registry.build_model`)."""
    ck = path_or_ckpt if isinstance(path_or_ckpt, dict) else load_torch_file(path_or_ckpt)
    if not isinstance(ck, dict) or not isinstance(ck.get("quant"), dict) or "model" not in ck:
        raise ModelLoadError(f"{path_or_ckpt if not isinstance(path_or_ckpt, dict) else 'the checkpoint'} was "
                             f"not written by save_quantized: it has no 'quant' record or no 'model'")
    quant = ck["quant"]
    if model is None:
        from wispy.models.registry import build_model

        model = build_model(ck["config"])
    modes = {n: r["mode"] for n, r in quant["layers"].items()}
    q = prepare(model, winograd=dict(modes), layers=list(modes), fold_bn=bool(quant.get("folded_batchnorm")))
    for n, mod in quant_layers(q).items():
        mod.frozen = True
        mod.strip()
    q.load_state_dict(ck["model"])
    q.wispy_quant = quant
    if ck.get("config") is not None:
        q.wispy_config = ck["config"]
    return q.eval()


def quant_summary(qmodel: nn.Module) -> str:
    """One line per quantized layer: name, shape, mode and why, calibration errors."""
    lines = []
    for n, mod in quant_layers(qmodel).items():
        rec = qmodel.wispy_quant["layers"].get(n, {})
        cal = rec.get("calib", {})
        shape = (f"{mod.in_channels}->{mod.out_channels} k{mod.kernel_size[0]} s{mod.stride[0]} "
                 f"d{mod.dilation[0]} g{mod.groups}" if isinstance(mod, QuantConv1d)
                 else f"{mod.in_features}->{mod.out_features}")
        errs = "  ".join(f"{k}={cal[k]:.2e}" for k in ("err_direct", "err_f23", "err_f43") if k in cal)
        lines.append(f"{n:24s} {shape:28s} {mod.mode:6s} {errs}  ({rec.get('why', '')})")
    return "\n".join(lines)
