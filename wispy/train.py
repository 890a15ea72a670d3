"""CTC training and phone-error-rate evaluation of wispy's acoustic models on a corpus made by
`wispy.data.generate_corpus`.

    model = GRUAcousticModel(40, 128, 2, 46)
    info = train_ctc(model, "out/corpus", epochs=20, out_dir="out/gru")   # -> best.pt, last.pt
    res = evaluate("out/gru/best.pt", "out/corpus", split="test", compiled=True)  # PyTorch + wispy

Features are log-mel (or MFCC) frames, normalised per dimension with the mean and standard
deviation of the training split; these statistics are part of the checkpoint's config and are
applied outside the model (a compiled module takes normalised features too).

Layouts: recurrent models take [B, T, F] and return [B, T, C]; Wav2Letter and ConvDFSMN take
[B, F, T] and return [B, C, T'] (T' after Wav2Letter's strided and unpadded convolutions;
ConvDFSMN keeps T). Batches are padded
to their longest utterance (utterances are sorted by length into batches, so padding is
small); the CTC loss gets each utterance's true output length. A unidirectional RNN's valid
frames do not see the padding after them, so no packing is needed; a convolutional model's
last valid frames see the padding within their lookahead in training (not at batch 1 in
`evaluate`), which batching by length keeps to a few frames.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from .metrics import error_rate, greedy_ctc_decode
from .models.acoustic import CONVDFSMN_SMALL, ConvDFSMN, ConvGRUModel, GRUAcousticModel, LSTMAcousticModel, Wav2Letter

FRAME_SECONDS = 0.01  # 10 ms hop

# CLI model names -> (class, kwargs without n_classes, which comes from the corpus)
MODELS = {
    "gru-small": (GRUAcousticModel, {"n_feats": 40, "hidden": 128, "layers": 2}),
    "gru-medium": (GRUAcousticModel, {"n_feats": 40, "hidden": 256, "layers": 2}),  # pruning's headroom
    "lstm-small": (LSTMAcousticModel, {"n_feats": 40, "hidden": 128, "layers": 2}),
    "wav2letter-small": (Wav2Letter, {"n_feats": 40, "width": 0.25}),
    "convdfsmn-small": (ConvDFSMN, {"n_feats": 40, **CONVDFSMN_SMALL}),
}
_CLASSES = {c.__name__: c for c in (GRUAcousticModel, LSTMAcousticModel, Wav2Letter, ConvGRUModel, ConvDFSMN)}


# ---------------------------------------------------------------------------------------------
# Models: config, layout, output lengths


def model_config(model: nn.Module) -> dict:
    """{"class": name, "kwargs": constructor arguments} of one of wispy's acoustic models,
    read back from its layers (so any instance can be checkpointed and rebuilt)."""
    if isinstance(model, (GRUAcousticModel, LSTMAcousticModel)):
        r = model.rnn
        kw = {"n_feats": r.input_size, "hidden": r.hidden_size, "layers": r.num_layers,
              "n_classes": model.head.out_features}
    elif isinstance(model, Wav2Letter):
        c, wide = model.body[0][0].out_channels, model.head.in_channels
        width = next((w for w in (wide / 2000, c / 250, 1.0)
                      if max(8, int(250 * w)) == c and max(16, int(2000 * w)) == wide), None)
        if width is None:
            raise ValueError(f"cannot infer Wav2Letter's width from {c}/{wide} channels")
        kw = {"n_feats": model.body[0][0].in_channels, "n_classes": model.head.out_channels, "width": width}
    elif isinstance(model, ConvDFSMN):
        kw = dict(model.hparams)
    elif isinstance(model, ConvGRUModel):
        r = model.rnn
        kw = {"n_feats": model.front[0].in_channels, "channels": model.front[0].out_channels,
              "hidden": r.hidden_size, "layers": r.num_layers, "n_classes": model.head.out_features}
    else:
        raise TypeError(f"train/evaluate support {', '.join(_CLASSES)}, not {type(model).__name__}")
    return {"class": type(model).__name__, "kwargs": kw}


def build_model(config: dict) -> nn.Module:
    return _CLASSES[config["class"]](**config["kwargs"])


def _channels_first(model_or_cfg) -> bool:
    """True when the model takes [B, F, T] and returns [B, C, T'] (Wav2Letter, ConvDFSMN)."""
    name = model_or_cfg["class"] if isinstance(model_or_cfg, dict) else type(model_or_cfg).__name__
    return name in ("Wav2Letter", "ConvDFSMN")


def output_lengths(model: nn.Module, lengths: torch.Tensor) -> torch.Tensor:
    """Output frames per input length. A model with its own `output_lengths` method
    (ConvDFSMN: its depthwise memory convolutions pad explicitly and keep the length) says
    so itself; otherwise every Conv1d in order (all of them are on the time axis and in
    sequence in these models) maps L -> floor((L + 2p - d(k-1) - 1) / s) + 1."""
    if callable(getattr(model, "output_lengths", None)):
        return model.output_lengths(lengths)
    out = lengths.clone()
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            (k,), (s,), (p,), (d,) = m.kernel_size, m.stride, m.padding, m.dilation
            out = torch.div(out + 2 * p - d * (k - 1) - 1, s, rounding_mode="floor") + 1
    return out


def _min_frames(model: nn.Module) -> int:
    """The shortest input with at least one output frame (dynamic-shape lower bound)."""
    t = 1
    while output_lengths(model, torch.tensor([t]))[0] < 1:
        t += 1
    return t


def _forward(model, x: torch.Tensor, channels_first: bool) -> torch.Tensor:
    """x: [B, T, F] -> log-probs [B, T', C] whatever the model's layout."""
    if channels_first:
        return model(x.transpose(1, 2)).transpose(1, 2)
    return model(x)


# ---------------------------------------------------------------------------------------------
# Data


# Letter targets (units="chars"): Wav2letter's 29 classes, blank first. The corpus' sentences
# are lowercase words of a-z separated by single spaces; the apostrophe is never used.
CHARS = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
_CHAR_INDEX = {c: i for i, c in enumerate(CHARS)}


def text_to_ids(text: str) -> list[int]:
    """A sentence -> letter ids (CHARS); lowercased, runs of whitespace become one space, other
    characters are dropped."""
    return [_CHAR_INDEX[c] for c in " ".join(text.lower().split()) if c in _CHAR_INDEX and c != CHARS[0]]


def ids_to_text(ids) -> str:
    return "".join(CHARS[i] for i in ids)


def vocabulary(corpus_dir, units: str = "phones") -> list[str]:
    """The output classes (blank first) for `units`: the corpus' phones or the letters."""
    from .data.corpus import read_phones

    if units == "phones":
        return read_phones(corpus_dir)
    if units == "chars":
        return list(CHARS)
    raise ValueError(f"units must be 'phones' or 'chars', not {units!r}")


def _load(corpus_dir, split, feature, n_mels, units="phones"):
    """[(features [T, F], target ids)] of a split; targets are phone ids or letter ids."""
    from .data.corpus import load_split

    data = load_split(corpus_dir, split, feature=feature, n_mels=n_mels)
    if units == "chars":
        return [(x, text_to_ids(r["text"])) for x, _, r in data]
    vocabulary(corpus_dir, units)  # validates `units`
    return [(x, ids) for x, ids, _ in data]


def _norm_stats(data) -> dict:
    allf = np.concatenate([x for x, _ in data], axis=0).astype(np.float64)
    return {"mean": allf.mean(0).tolist(), "std": (allf.std(0) + 1e-5).tolist()}


def _apply_norm(x: np.ndarray, norm: Optional[dict]) -> np.ndarray:
    if not norm:
        return np.ascontiguousarray(x, dtype=np.float32)
    return ((x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)).astype(np.float32)


def _batches(lengths: list[int], batch_size: int, rng: Optional[np.random.Generator]) -> list[list[int]]:
    """Indices sorted by length, cut into batches; the batch order is shuffled by `rng`."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _collate(items):
    """[(x [T, F] normalised, ids)] -> padded [B, T, F], lengths, concatenated targets, target lengths."""
    lengths = torch.tensor([x.shape[0] for x, _ in items])
    x = torch.zeros(len(items), int(lengths.max()), items[0][0].shape[1])
    for i, (f, _) in enumerate(items):
        x[i, :f.shape[0]] = torch.from_numpy(f)
    targets = torch.tensor([p for _, ids in items for p in ids], dtype=torch.long)
    tlen = torch.tensor([len(ids) for _, ids in items])
    return x, lengths, targets, tlen


@torch.no_grad()
def _decode_batched(model, data, channels_first, batch_size=32) -> list[list[int]]:
    model.eval()
    hyps: list = [None] * len(data)
    for b in _batches([x.shape[0] for x, _ in data], batch_size, None):
        x, lengths, _, _ = _collate([data[i] for i in b])
        lp = _forward(model, x, channels_first)
        olen = output_lengths(model, lengths)
        for j, i in enumerate(b):
            hyps[i] = greedy_ctc_decode(lp[j, :olen[j]].numpy())
    return hyps


# ---------------------------------------------------------------------------------------------
# Training


def _seed_all(seed: int):
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _atomic_save(obj, path: Path):
    """torch.save that never leaves a half-written or vanished checkpoint (`atomic_write`)."""
    from ._files import atomic_write

    atomic_write(path, lambda f: torch.save(obj, f))


def train_ctc(model: nn.Module, corpus_dir, *, feature: str = "logmel", n_mels: int = 40, epochs: int,
              batch_size: int = 16, lr: float = 1e-3, out_dir, resume: bool = True, seed: int = 0,
              max_minutes: Optional[float] = None, progress: bool = True, clip: float = 5.0,
              name: Optional[str] = None, units: str = "phones") -> dict:
    """Trains `model` (GRUAcousticModel, LSTMAcousticModel, Wav2Letter, ConvDFSMN or
    ConvGRUModel) with CTC (blank 0) on the corpus' train split; validates greedy-decoded PER
    every epoch.

    epochs       total number of epochs (a resumed run continues up to it)
    out_dir      last.pt (every epoch: model, optimizer, scheduler, epoch, history: per epoch
                 train_loss, valid_per, lr, seconds (wall) and cpu_seconds (this process, all threads)),
                 best.pt (best valid PER), history.json
    resume       continue from out_dir/last.pt when it exists (same model config required)
    max_minutes  stop after the last epoch that is expected to end within this budget
    clip         gradient-norm clipping
    progress     True: a progress bar per epoch and a line after it; "epochs": the lines only
                 (prefixed with `name`); False: nothing
    units        "phones" (the corpus' phone transcriptions; PER) or "chars" (the sentences'
                 letters, `CHARS`, for a letter model like Wav2letter's own; the validation
                 "PER" is then the character error rate)
    Adam at `lr`, halved when the valid PER has not improved for 2 epochs (once it is below 0.9:
    not on CTC's initial all-blank plateau). The batch order of
    epoch e is drawn from (seed, e), so a resumed run sees the same batches as an uninterrupted
    one. Returns {"epoch", "best_valid_per", "best_epoch", "history", "train_seconds",
    "parameters", "out_dir", "stopped"}; the model is left with the last epoch's weights
    (in eval mode) and `model.wispy_config` set to the checkpoint config."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _seed_all(seed)
    cfg = model_config(model)
    cf = _channels_first(cfg)
    vocab = vocabulary(corpus_dir, units)
    if cfg["kwargs"]["n_classes"] != len(vocab):
        raise ValueError(f"the model has {cfg['kwargs']['n_classes']} classes, the corpus {len(vocab)} {units}")
    train = _load(corpus_dir, "train", feature, n_mels, units)
    valid = _load(corpus_dir, "valid", feature, n_mels, units)
    if cfg["kwargs"]["n_feats"] != train[0][0].shape[1]:
        raise ValueError(f"the model takes {cfg['kwargs']['n_feats']} features, the corpus gives {train[0][0].shape[1]}")
    config = {**cfg, "name": name, "feature": feature, "n_mels": n_mels, "norm": _norm_stats(train),
              "units": units, "phones" if units == "phones" else "chars": vocab, "seed": seed,
              "batch_size": batch_size, "lr": lr}
    train = [(_apply_norm(x, config["norm"]), ids) for x, ids in train]
    valid = [(_apply_norm(x, config["norm"]), ids) for x, ids in valid]

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    start, history, best, best_epoch = 0, [], math.inf, 0
    last = out_dir / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        if ck["config"].get("units", "phones") != units:
            raise ValueError(f"{last} was trained on {ck['config'].get('units', 'phones')}, not {units}")
        if {k: ck["config"][k] for k in ("class", "kwargs")} != cfg:
            raise ValueError(f"{last} holds a {ck['config']['class']}{ck['config']['kwargs']}, not the "
                             f"model given ({cfg['class']}{cfg['kwargs']}); use another out_dir or resume=False")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, history = ck["epoch"], ck["history"]
        best, best_epoch = ck["best_valid_per"], ck["best_epoch"]
        config["norm"] = ck["config"]["norm"]  # same corpus: identical; else keep the trained one
    n_params = sum(p.numel() for p in model.parameters())
    t_start = time.perf_counter()
    stopped = "epochs"
    lengths = [x.shape[0] for x, _ in train]
    for epoch in range(start + 1, epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        rng = np.random.default_rng([seed, epoch])
        batches = _batches(lengths, batch_size, rng)
        total, count = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False,
                   disable=not progress or progress == "epochs")
        for b in bar:
            x, xlen, targets, tlen = _collate([train[i] for i in b])
            lp = _forward(model, x, cf)  # [B, T', C]
            olen = output_lengths(model, xlen)
            loss = ctc(lp.transpose(0, 1), targets, olen, tlen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            total += loss.item() * len(b)
            count += len(b)
            bar.set_postfix(loss=f"{total / count:.3f}")
        bar.close()
        hyps = _decode_batched(model, valid, cf)
        per = error_rate([ids for _, ids in valid], hyps)
        if best < 0.9 or per < 0.9:  # not while still on CTC's initial all-blank plateau
            sched.step(per)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "valid_per": per,
                        "lr": opt.param_groups[0]["lr"], "seconds": seconds,
                        "cpu_seconds": time.process_time() - c0})
        if progress:
            prefix = f"{name}: " if progress == "epochs" and name else ""
            tqdm.write(f"{prefix}epoch {epoch}: train loss {total / max(count, 1):.3f}  valid PER {per:.4f}  "
                       f"({seconds:.1f} s)")
        if per < best:
            best, best_epoch = per, epoch
            _atomic_save({"model": model.state_dict(), "config": config, "epoch": epoch, "valid_per": per},
                         out_dir / "best.pt")
        _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                      "config": config, "epoch": epoch, "history": history, "best_valid_per": best,
                      "best_epoch": best_epoch}, last)
        (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        if max_minutes is not None and epoch < epochs:
            elapsed = time.perf_counter() - t_start
            if elapsed + seconds > 60 * max_minutes:
                stopped = "time"
                break
    model.eval()
    model.wispy_config = config
    return {"epoch": history[-1]["epoch"] if history else start, "best_valid_per": best,
            "best_epoch": best_epoch, "history": history, "train_seconds": time.perf_counter() - t_start,
            "parameters": n_params, "out_dir": str(out_dir), "stopped": stopped}


def load_checkpoint(path) -> nn.Module:
    """Rebuilds the model of a best.pt/last.pt (eval mode, `.wispy_config` set)."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ck["config"])
    model.load_state_dict(ck["model"])
    model.eval()
    model.wispy_config = ck["config"]
    return model


# ---------------------------------------------------------------------------------------------
# Evaluation


def compile_for_eval(model: nn.Module, *, target="host", vulkan_target: Optional[str] = None,
                     example_frames: int = 200, progress: bool = False):
    """Compiles `model` once for every utterance length (a dynamic number of frames)."""
    from .compiler.api import compile_model

    cfg = model_config(model)
    n_feats = cfg["kwargs"]["n_feats"]
    cf = _channels_first(cfg)
    # torch.export wants more than one output frame per conv (e.g. >= 6 for Wav2Letter);
    # 32 frames (0.32 s) is a safe lower bound for every conv model here
    has_conv = any(isinstance(m, nn.Conv1d) for m in model.modules())
    frames = torch.export.Dim("frames", min=max(32 if has_conv else 2, _min_frames(model)), max=100_000)
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
    from tqdm import tqdm

    from .compiler.api import CompiledModel

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
    cfg = config or getattr(torch_model, "wispy_config", None)
    if cfg is None and torch_model is not None:
        cfg = {**model_config(torch_model), "feature": "logmel", "n_mels": 40, "norm": None}
    if cfg is None:
        raise ValueError("evaluate() needs a config (feature, n_mels, norm, class): pass config= or reference=")
    cf = _channels_first(cfg)

    compile_seconds = None
    if compiled and torch_model is not None and module is None and vmfb is None:
        t0 = time.perf_counter()
        module = compile_for_eval(torch_model, target=target, progress=progress)
        compile_seconds = time.perf_counter() - t0
    if vmfb is not None:
        if target == "host":
            from .runtime import LoadedModule

            loaded = LoadedModule(vmfb, driver="local-task")
            run_compiled = lambda x: loaded(x)[0]  # noqa: E731
        else:
            from .runtime import run_vmfb

            run_compiled = lambda x: run_vmfb(vmfb, [x], device=target)[0]  # noqa: E731
    elif module is not None:
        run_compiled = lambda x: module.run(x)[0]  # noqa: E731
    else:
        run_compiled = None

    units = cfg.get("units", "phones")
    data = _load(corpus_dir, split, cfg.get("feature", "logmel"), cfg.get("n_mels", 40), units)
    if limit:
        data = data[:limit]
    refs = [ids for _, ids in data]
    audio = sum(x.shape[0] for x, _ in data) * FRAME_SECONDS
    t_hyps, c_hyps, t_time, c_time = [], [], 0.0, 0.0
    differ, max_diff, ambiguous = [], 0.0, 0
    if torch_model is not None:
        torch_model.eval()
    for x, _ in tqdm(data, desc=f"evaluating {split}", unit="utt", leave=False, disable=not progress):
        xn = _apply_norm(x, cfg.get("norm"))
        inp = np.ascontiguousarray(xn.T[None] if cf else xn[None])
        lp_t = lp_c = None
        if torch_model is not None:
            t0 = time.perf_counter()
            with torch.no_grad():
                out = torch_model(torch.from_numpy(inp)).numpy()
            t_time += time.perf_counter() - t0
            lp_t = out[0].T if cf else out[0]
            t_hyps.append(greedy_ctc_decode(lp_t))
        if run_compiled is not None:
            t0 = time.perf_counter()
            out = np.asarray(run_compiled(inp))
            c_time += time.perf_counter() - t0
            lp_c = out[0].T if cf else out[0]
            c_hyps.append(greedy_ctc_decode(lp_c))
        if lp_t is not None and lp_c is not None:
            max_diff = max(max_diff, float(np.abs(lp_t - lp_c).max()))
            if t_hyps[-1] != c_hyps[-1]:
                # a near-tie between the two best classes of some frame explains a difference
                top2 = np.sort(lp_t, axis=1)[:, -2:]
                gap = float((top2[:, 1] - top2[:, 0])[lp_t.argmax(1) != lp_c.argmax(1)].max())
                differ.append({"index": len(t_hyps) - 1, "top2_gap": gap})
                ambiguous += gap < 1e-3
    res = {"split": split, "units": units, "utterances": len(data), "audio_seconds": audio}

    def rates(hyps):
        out = {"per": error_rate(refs, hyps)}
        if units == "chars":
            out["wer"] = error_rate([ids_to_text(r).split() for r in refs], [ids_to_text(h).split() for h in hyps])
        return out

    if torch_model is not None:
        res.update(**rates(t_hyps), rtf=t_time / audio, seconds=t_time, hyps=t_hyps)
    if run_compiled is not None:
        comp = {**rates(c_hyps), "rtf": c_time / audio, "seconds": c_time,
                "compile_seconds": compile_seconds, "target": target, "hyps": c_hyps}
        if torch_model is None:
            res.update({k: comp[k] for k in ("per", "wer", "rtf", "seconds", "hyps") if k in comp})
        else:
            res["compiled"] = comp
            res.update(differ=len(differ), differ_details=differ, differ_near_ties=ambiguous,
                       max_abs_diff=max_diff)
    return res
