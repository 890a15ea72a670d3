"""Phone-error-rate evaluation of a model, a compiled module or a saved `.vmfb`, utterance by
utterance at batch 1, with the PyTorch-vs-compiled comparison."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from wispy.data.loaders import apply_norm, load_examples
from wispy.data.vocab import ids_to_text
from wispy.metrics import error_rate, greedy_ctc_decode
from wispy.models.registry import is_channels_first, load_checkpoint, min_frames, model_config

FRAME_SECONDS = 0.01  # 10 ms hop


def compile_for_eval(model: nn.Module, *, target="host", vulkan_target: Optional[str] = None,
                     example_frames: int = 200, progress: bool = False):
    """Compiles `model` once for every utterance length (a dynamic number of frames)."""
    from wispy.compiler.api import compile_model

    cfg = model_config(model)
    n_feats = cfg["kwargs"]["n_feats"]
    cf = is_channels_first(cfg)
    # torch.export wants more than one output frame per conv (e.g. >= 6 for Wav2Letter);
    # 32 frames (0.32 s) is a safe lower bound for every conv model here
    has_conv = any(isinstance(m, nn.Conv1d) for m in model.modules())
    frames = torch.export.Dim("frames", min=max(32 if has_conv else 2, min_frames(model)), max=100_000)
    example = torch.randn(1, n_feats, example_frames) if cf else torch.randn(1, example_frames, n_feats)
    if target == "vulkan" and vulkan_target is None:
        vulkan_target = "lavapipe"  # runs here
    return compile_model(model.eval(), (example,), target=target, vulkan_target=vulkan_target,
                         dynamic_shapes={"x": {2 if cf else 1: frames}}, progress=progress)


def evaluate(model_or_vmfb, corpus_dir, split: str = "test", *, target: str = "host", compiled: bool = False,
             reference: Optional[nn.Module] = None, config: Optional[dict] = None,
             limit: Optional[int] = None, progress: bool = True) -> dict:
    """PER and real-time factor over `split`, utterance by utterance at batch 1.

    model_or_vmfb  an nn.Module (checkpoint-trained: has `.wispy_config`), a checkpoint path
                   (.pt), a wispy CompiledModel, or a .vmfb path (run with
                   wispy.runtime on device `target`: host, arm64 or vulkan)
    compiled       with a model/checkpoint: also compile it once for `target` (dynamic frame
                   count) and evaluate the compiled module
    reference      the PyTorch model a CompiledModel/.vmfb was compiled from (for config and
                   the PyTorch-vs-compiled comparison)
    config         feature/n_mels/norm/class config when neither model carries one
    Returns {"split", "units", "utterances", "per", "rtf", "seconds", "audio_seconds", "hyps"} for the
    evaluated model (PyTorch when it is one); when both a PyTorch model and a compiled module are
    present, also "compiled": {"per", "rtf", "seconds", "compile_seconds", "target"}, "differ"
    (utterances whose decoded phone sequences differ) and "max_abs_diff" (log-probs).
    For a letter model (config units "chars") "per" is the character error rate, and "wer"
    (words: the decoded letters split at spaces) is added, also under "compiled"."""
    torch_model, module, vmfb = _resolve(model_or_vmfb, reference)
    cfg = config or getattr(torch_model, "wispy_config", None)
    if cfg is None and torch_model is not None:
        cfg = {**model_config(torch_model), "feature": "logmel", "n_mels": 40, "norm": None}
    if cfg is None:
        raise ValueError("evaluate() needs a config (feature, n_mels, norm, class): pass config= or reference=")
    compile_seconds = None
    if compiled and torch_model is not None and module is None and vmfb is None:
        t0 = time.perf_counter()
        module = compile_for_eval(torch_model, target=target, progress=progress)
        compile_seconds = time.perf_counter() - t0
    run_compiled = _compiled_runner(module, vmfb, target)
    units = cfg.get("units", "phones")
    data = load_examples(corpus_dir, split, cfg.get("feature", "logmel"), cfg.get("n_mels", 40), units)
    if limit:
        data = data[:limit]
    audio = sum(x.shape[0] for x, _ in data) * FRAME_SECONDS
    d = _decode_all(data, cfg, torch_model, run_compiled, desc=f"evaluating {split}", progress=progress)
    refs = [ids for _, ids in data]
    res = {"split": split, "units": units, "utterances": len(data), "audio_seconds": audio}
    if torch_model is not None:
        res.update(**_rates(refs, d["t_hyps"], units), rtf=d["t_time"] / audio, seconds=d["t_time"],
                   hyps=d["t_hyps"])
    if run_compiled is not None:
        comp = {**_rates(refs, d["c_hyps"], units), "rtf": d["c_time"] / audio, "seconds": d["c_time"],
                "compile_seconds": compile_seconds, "target": target, "hyps": d["c_hyps"]}
        if torch_model is None:
            res.update({k: comp[k] for k in ("per", "wer", "rtf", "seconds", "hyps") if k in comp})
        else:
            res["compiled"] = comp
            res.update(differ=len(d["differ"]), differ_details=d["differ"], differ_near_ties=d["ambiguous"],
                       max_abs_diff=d["max_diff"])
    return res


def _resolve(model_or_vmfb, reference: Optional[nn.Module]):
    """(PyTorch model, CompiledModel, .vmfb path) of `evaluate`'s first argument, each None
    when not given; the reference model stands in for a missing PyTorch one."""
    from wispy.compiler.api import CompiledModel

    torch_model, module, vmfb = None, None, None
    if isinstance(model_or_vmfb, nn.Module):
        torch_model = model_or_vmfb
    elif isinstance(model_or_vmfb, CompiledModel):
        module = model_or_vmfb
    elif str(model_or_vmfb).endswith(".vmfb"):
        vmfb = Path(model_or_vmfb)
    else:
        torch_model = load_checkpoint(model_or_vmfb)
    if torch_model is None and reference is not None:
        torch_model = reference
    return torch_model, module, vmfb


def _compiled_runner(module, vmfb: Optional[Path], target: str):
    """A function input -> log-probs running the compiled module or the .vmfb on `target`
    (None when there is neither)."""
    if vmfb is not None:
        if target == "host":
            from wispy.runtime import LoadedModule

            loaded = LoadedModule(vmfb, driver="local-task")
            return lambda x: loaded(x)[0]
        from wispy.runtime import run_vmfb

        return lambda x: run_vmfb(vmfb, [x], device=target)[0]
    if module is not None:
        return lambda x: module.run(x)[0]
    return None


def _decode_all(data, cfg: dict, torch_model, run_compiled, *, desc: str, progress: bool) -> dict:
    """Greedy decoding of every utterance at batch 1 by the PyTorch model and/or the compiled
    one: {"t_hyps", "c_hyps", "t_time", "c_time" (seconds), "differ" (utterances decoded
    differently, with the top-2 gap), "ambiguous" (of them near ties), "max_diff"}."""
    from tqdm import tqdm

    cf = is_channels_first(cfg)
    d = {"t_hyps": [], "c_hyps": [], "t_time": 0.0, "c_time": 0.0, "differ": [], "max_diff": 0.0, "ambiguous": 0}
    if torch_model is not None:
        torch_model.eval()
    for x, _ in tqdm(data, desc=desc, unit="utt", leave=False, disable=not progress):
        xn = apply_norm(x, cfg.get("norm"))
        inp = np.ascontiguousarray(xn.T[None] if cf else xn[None])
        lp_t = lp_c = None
        if torch_model is not None:
            t0 = time.perf_counter()
            with torch.no_grad():
                out = torch_model(torch.from_numpy(inp)).numpy()
            d["t_time"] += time.perf_counter() - t0
            lp_t = out[0].T if cf else out[0]
            d["t_hyps"].append(greedy_ctc_decode(lp_t))
        if run_compiled is not None:
            t0 = time.perf_counter()
            out = np.asarray(run_compiled(inp))
            d["c_time"] += time.perf_counter() - t0
            lp_c = out[0].T if cf else out[0]
            d["c_hyps"].append(greedy_ctc_decode(lp_c))
        if lp_t is not None and lp_c is not None:
            d["max_diff"] = max(d["max_diff"], float(np.abs(lp_t - lp_c).max()))
            if d["t_hyps"][-1] != d["c_hyps"][-1]:
                # a near-tie between the two best classes of some frame explains a difference
                top2 = np.sort(lp_t, axis=1)[:, -2:]
                gap = float((top2[:, 1] - top2[:, 0])[lp_t.argmax(1) != lp_c.argmax(1)].max())
                d["differ"].append({"index": len(d["t_hyps"]) - 1, "top2_gap": gap})
                d["ambiguous"] += gap < 1e-3
    return d


def _rates(refs, hyps, units: str) -> dict:
    """{"per"} and, for a letter model, {"wer"} (the decoded letters split at spaces)."""
    out = {"per": error_rate(refs, hyps)}
    if units == "chars":
        out["wer"] = error_rate([ids_to_text(r).split() for r in refs], [ids_to_text(h).split() for h in hyps])
    return out
