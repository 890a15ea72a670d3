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

import math
import time
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from wispy.data.loaders import apply_norm, load_examples, norm_stats
from wispy.data.vocab import vocabulary
from wispy.models.registry import model_config
from wispy.training.checkpoints import (  # noqa: F401  (seed_all, save_checkpoint: also importable from here)
    resume_from,
    save_checkpoint,
    seed_all,
    write_history,
)
from wispy.training.loop import run_epoch
from wispy.training.validate import decode_batched, valid_per  # noqa: F401  (decode_batched: also from here)


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
    seed_all(seed)
    train, valid, config = _ctc_data(model, corpus_dir, feature, n_mels, units)
    config.update(name=name, seed=seed, batch_size=batch_size, lr=lr)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
    last = out_dir / "last.pt"
    start, history, best, best_epoch = _resume_ctc(resume_from(last, resume), last, model, opt, sched, config)
    n_params = sum(p.numel() for p in model.parameters())
    t_start = time.perf_counter()
    stopped = "epochs"
    for epoch in range(start + 1, epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        stats = run_epoch(model, train, opt, seed=seed, epoch=epoch, batch_size=batch_size, clip=clip,
                          desc=f"epoch {epoch}/{epochs}", progress=bool(progress) and progress != "epochs")
        per = valid_per(model, valid)
        if best < 0.9 or per < 0.9:  # not while still on CTC's initial all-blank plateau
            sched.step(per)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": stats["loss"], "valid_per": per,
                        "lr": opt.param_groups[0]["lr"], "seconds": seconds,
                        "cpu_seconds": time.process_time() - c0})
        if progress:
            prefix = f"{name}: " if progress == "epochs" and name else ""
            tqdm.write(f"{prefix}epoch {epoch}: train loss {stats['loss']:.3f}  valid PER {per:.4f}  "
                       f"({seconds:.1f} s)")
        if per < best:
            best, best_epoch = per, epoch
            save_checkpoint({"model": model.state_dict(), "config": config, "epoch": epoch, "valid_per": per},
                            out_dir / "best.pt")
        save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "config": config, "epoch": epoch, "history": history, "best_valid_per": best,
                         "best_epoch": best_epoch}, last)
        write_history(out_dir, history)
        if max_minutes is not None and epoch < epochs and time.perf_counter() - t_start + seconds > 60 * max_minutes:
            stopped = "time"
            break
    model.eval()
    model.wispy_config = config
    return {"epoch": history[-1]["epoch"] if history else start, "best_valid_per": best,
            "best_epoch": best_epoch, "history": history, "train_seconds": time.perf_counter() - t_start,
            "parameters": n_params, "out_dir": str(out_dir), "stopped": stopped}


def _ctc_data(model: nn.Module, corpus_dir, feature: str, n_mels: int, units: str):
    """(train, valid, config): the corpus' normalised examples and the checkpoint config
    (model class and arguments, features, their statistics, units and vocabulary), after
    checking that the model's classes and features fit the corpus."""
    cfg = model_config(model)
    vocab = vocabulary(corpus_dir, units)
    if cfg["kwargs"]["n_classes"] != len(vocab):
        raise ValueError(f"the model has {cfg['kwargs']['n_classes']} classes, the corpus {len(vocab)} {units}")
    train = load_examples(corpus_dir, "train", feature, n_mels, units)
    valid = load_examples(corpus_dir, "valid", feature, n_mels, units)
    if cfg["kwargs"]["n_feats"] != train[0][0].shape[1]:
        raise ValueError(f"the model takes {cfg['kwargs']['n_feats']} features, the corpus gives {train[0][0].shape[1]}")
    config = {**cfg, "name": None, "feature": feature, "n_mels": n_mels, "norm": norm_stats(train),
              "units": units, "phones" if units == "phones" else "chars": vocab}
    train = [(apply_norm(x, config["norm"]), ids) for x, ids in train]
    valid = [(apply_norm(x, config["norm"]), ids) for x, ids in valid]
    return train, valid, config


def _resume_ctc(ck: Optional[dict], last: Path, model: nn.Module, opt, sched, config: dict):
    """(start epoch, history, best valid PER, best epoch): from the checkpoint `ck` of `last`
    (its model, optimizer and scheduler loaded, its feature statistics kept in `config`) or a
    fresh start when there is none."""
    if ck is None:
        return 0, [], math.inf, 0
    units = config["units"]
    if ck["config"].get("units", "phones") != units:
        raise ValueError(f"{last} was trained on {ck['config'].get('units', 'phones')}, not {units}")
    cfg = {k: config[k] for k in ("class", "kwargs")}
    if {k: ck["config"][k] for k in ("class", "kwargs")} != cfg:
        raise ValueError(f"{last} holds a {ck['config']['class']}{ck['config']['kwargs']}, not the "
                         f"model given ({cfg['class']}{cfg['kwargs']}); use another out_dir or resume=False")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    config["norm"] = ck["config"]["norm"]  # same corpus: identical; else keep the trained one
    return ck["epoch"], ck["history"], ck["best_valid_per"], ck["best_epoch"]
