"""One CTC training epoch, the loop every trainer of wispy runs: `train_ctc`, ADMM and masked
fine-tuning (`wispy.compress.admm`), QAT and RSQ (`wispy.compress.rsq`).

    stats = run_epoch(model, train, opt, seed=0, epoch=3, batch_size=16, clip=5.0,
                      hooks=EpochHooks(after_step=lambda i: apply_masks(model)))

An epoch: the model in train mode; the utterances sorted by length and cut into batches whose
order is drawn from (seed, epoch), or (seed, salt, epoch) (each trainer has its own salt, so
ADMM and fine-tuning of one seed see different orders); per batch: padded features, the
model's log-probabilities, the CTC loss (blank 0, mean over the batch of the loss per target
frame, infinite losses zeroed), plus the hooks' loss terms, backward, the gradient norm clipped
to `clip`, an optimizer step. The hooks are where the trainers differ:

    before_epoch(epoch)         after model.train(), before the first batch
    before_batch(step)          e.g. set the learning rate (step: the batch's index in the epoch)
    loss_terms {name: (weight, term(batch))}
                                loss = CTC + sum of weight * term (distillation: `kd_term`)
    before_step(step)           after backward and clipping, before opt.step(): gradient edits
                                that are not clipped (zero the pruned weights' gradients, add
                                ADMM's penalty gradient)
    after_step(step)            after opt.step() (re-apply masks, ADMM's Z/U update)
    after_epoch(epoch, stats)   after the last batch
    postfix()                   extra fields for the progress bar
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from wispy.data.loaders import collate, length_batches
from wispy.models.registry import forward_frames, output_lengths
from wispy.training.validate import channels_first as model_channels_first


@dataclass
class Batch:
    """What a loss term sees of the batch being trained on."""

    index: int                     # the batch's index in the epoch
    x: torch.Tensor                # [B, T, F] padded, normalised features
    lengths: torch.Tensor          # [B] input frames
    targets: torch.Tensor          # the target ids, concatenated
    target_lengths: torch.Tensor   # [B]
    log_probs: torch.Tensor        # [B, T', C] the model's output
    output_lengths: torch.Tensor   # [B] valid output frames
    channels_first: bool           # the model takes [B, F, T]


@dataclass
class EpochHooks:
    """The trainer-specific parts of an epoch (see the module docstring); all optional."""

    before_epoch: Optional[Callable[[int], None]] = None
    before_batch: Optional[Callable[[int], None]] = None
    loss_terms: dict = field(default_factory=dict)
    before_step: Optional[Callable[[int], None]] = None
    after_step: Optional[Callable[[int], None]] = None
    after_epoch: Optional[Callable[[int, dict], None]] = None
    postfix: Optional[Callable[[], dict]] = None


def n_batches(train: list, batch_size: int) -> int:
    """Batches in an epoch over `train`."""
    return -(-len(train) // batch_size)


def batch_order(train: list, batch_size: int, seed: int, epoch: int, salt: Optional[int] = None) -> list[list[int]]:
    """The batches of epoch `epoch` (indices into `train`), in the order drawn from (seed,
    [salt,] epoch): a resumed run sees the batches an uninterrupted one would."""
    key = [seed, epoch] if salt is None else [seed, salt, epoch]
    return length_batches([x.shape[0] for x, _ in train], batch_size, np.random.default_rng(key))


def run_epoch(model: nn.Module, train: list, opt: torch.optim.Optimizer, *, seed: int, epoch: int,
              batch_size: int, clip: float, salt: Optional[int] = None, hooks: Optional[EpochHooks] = None,
              clip_params=None, max_batches: Optional[int] = None, desc: str = "", progress: bool = True) -> dict:
    """One pass over `train` [(normalised features [T, F], target ids)]; see the module docstring.

    clip_params  the parameters whose gradient norm is clipped (default: all the model's)
    max_batches  train on the first this many batches of the epoch's order only
    Returns the means per utterance {"loss", "ctc", one per loss term} and "batches"."""
    from tqdm import tqdm

    hooks = hooks or EpochHooks()
    cf = model_channels_first(model)
    model.train()
    if hooks.before_epoch is not None:
        hooks.before_epoch(epoch)
    batches = batch_order(train, batch_size, seed, epoch, salt)[:max_batches]
    sums = dict.fromkeys(["loss", "ctc", *hooks.loss_terms], 0.0)
    count = 0
    bar = tqdm(batches, desc=desc, unit="batch", leave=False, disable=not progress)
    for i, b in enumerate(bar):
        if hooks.before_batch is not None:
            hooks.before_batch(i)
        values = _loss(model, [train[j] for j in b], i, cf, hooks.loss_terms)
        opt.zero_grad(set_to_none=True)
        values["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters() if clip_params is None else clip_params, clip)
        if hooks.before_step is not None:
            hooks.before_step(i)
        opt.step()
        if hooks.after_step is not None:
            hooks.after_step(i)
        for k, v in values.items():
            sums[k] += v.item() * len(b)
        count += len(b)
        if progress:
            shown = {k: f"{v / count:.3f}" for k, v in sums.items() if k != "ctc"}
            bar.set_postfix(**shown, **(hooks.postfix() if hooks.postfix else {}))
    bar.close()
    stats = {k: v / max(count, 1) for k, v in sums.items()}
    stats["batches"] = len(batches)
    if hooks.after_epoch is not None:
        hooks.after_epoch(epoch, stats)
    return stats


def _loss(model: nn.Module, items: list, index: int, cf: bool, terms: dict) -> dict:
    """{"loss": CTC + the weighted terms, "ctc", each term} on one batch."""
    x, xlen, targets, tlen = collate(items)
    lp = forward_frames(model, x, cf)  # [B, T', C]
    olen = output_lengths(model, xlen)
    ctc = nn.functional.ctc_loss(lp.transpose(0, 1), targets, olen, tlen, blank=0, zero_infinity=True)
    values = {"loss": ctc, "ctc": ctc}
    if terms:
        batch = Batch(index, x, xlen, targets, tlen, lp, olen, cf)
        for name, (weight, term) in terms.items():
            values[name] = term(batch)
            values["loss"] = values["loss"] + weight * values[name]
    return values
