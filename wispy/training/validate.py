"""Greedy CTC decoding of a data set in length-sorted batches, and its error rate."""
from __future__ import annotations

import torch
from torch import nn

from wispy.data.loaders import collate, length_batches
from wispy.metrics import error_rate, greedy_ctc_decode
from wispy.models.registry import forward_frames, is_channels_first, output_lengths


def channels_first(model: nn.Module) -> bool:
    """Whether `model` takes [B, F, T]: from its wispy_config, else from its class."""
    cfg = getattr(model, "wispy_config", None)
    return is_channels_first(cfg if cfg is not None else model)


@torch.no_grad()
def decode_batched(model, data, channels_first, batch_size=32) -> list[list[int]]:
    """Greedy-decoded ids of every utterance of `data` [(features, ids)], the model in eval mode."""
    model.eval()
    hyps: list = [None] * len(data)
    for b in length_batches([x.shape[0] for x, _ in data], batch_size, None):
        x, lengths, _, _ = collate([data[i] for i in b])
        lp = forward_frames(model, x, channels_first)
        olen = output_lengths(model, lengths)
        for j, i in enumerate(b):
            hyps[i] = greedy_ctc_decode(lp[j, :olen[j]].numpy())
    return hyps


def valid_per(model: nn.Module, valid) -> float:
    """The error rate of greedy decoding on `valid` (the training loops' validation); the model
    is left in train mode."""
    hyps = decode_batched(model, valid, channels_first(model))
    model.train()
    return error_rate([ids for _, ids in valid], hyps)
