"""wispy.training.run_epoch, the one CTC epoch every trainer runs: the batch order comes from
(seed, [salt,] epoch), the hooks run in their documented places, loss terms are added with
their weights and reported, and max_batches cuts the epoch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wispy.models.acoustic import GRUAcousticModel
from wispy.training.loop import EpochHooks, batch_order, run_epoch

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((int(rng.integers(6, 12)), 8)).astype(np.float32),
             rng.integers(1, 5, size=2).tolist()) for _ in range(n)]


def _model():
    torch.manual_seed(0)
    return GRUAcousticModel(8, 12, 1, 5)


def test_batch_order_is_drawn_from_seed_salt_and_epoch():
    train = _data()
    assert batch_order(train, 4, 0, 1) == batch_order(train, 4, 0, 1)
    orders = [batch_order(train, 4, *key) for key in ((0, 1), (0, 2), (1, 1))]
    assert orders[0] != orders[1] and orders[0] != orders[2]  # another epoch, another seed
    assert batch_order(train, 4, 0, 1, salt=2) != orders[0]  # a trainer's salt
    assert sorted(i for b in orders[0] for i in b) == list(range(len(train)))


def test_hooks_run_in_order_and_terms_are_weighted():
    model, train = _model(), _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    calls = []

    def term(batch):
        calls.append(("term", batch.index))
        assert batch.log_probs.shape[0] == batch.x.shape[0] and not batch.channels_first
        return batch.log_probs.new_tensor(0.5) + 0 * batch.log_probs.sum()

    hooks = EpochHooks(before_epoch=lambda e: calls.append(("before_epoch", e)),
                       before_batch=lambda i: calls.append(("before_batch", i)),
                       loss_terms={"half": (4.0, term)},
                       before_step=lambda i: calls.append(("before_step", i)),
                       after_step=lambda i: calls.append(("after_step", i)),
                       after_epoch=lambda e, s: calls.append(("after_epoch", e, s["batches"])))
    stats = run_epoch(model, train, opt, seed=0, epoch=3, batch_size=8, clip=5.0, hooks=hooks, progress=False)
    assert stats["batches"] == 3
    assert calls[0] == ("before_epoch", 3) and calls[-1] == ("after_epoch", 3, 3)
    assert calls[1:5] == [("before_batch", 0), ("term", 0), ("before_step", 0), ("after_step", 0)]
    assert stats["half"] == pytest.approx(0.5)
    assert stats["loss"] == pytest.approx(stats["ctc"] + 4.0 * 0.5)


def test_max_batches_and_repeatable_epochs():
    train = _data()
    a, b = _model(), _model()
    for m in (a, b):
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        stats = run_epoch(m, train, opt, seed=1, epoch=1, batch_size=4, clip=1.0, max_batches=2, progress=False)
        assert stats["batches"] == 2
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
