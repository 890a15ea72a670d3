"""ConvDFSMN: the DFSMN recurrence written out by hand, shapes and lengths, the receptive field,
checkpoint config, and the compiled module against PyTorch (static and dynamic length)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wispy.models import ZOO, ConvDFSMN, DFSMNLayer, convdfsmn_small, example_input
from wispy.models.registry import (
    is_channels_first as _channels_first,
    build_model,
    model_config,
    output_lengths,
)


def _tiny(**kw):
    torch.manual_seed(0)
    args = dict(n_feats=8, n_classes=5, conv_layers=1, conv_channels=6, layers=3, hidden=12, proj=6,
                lookback=3, lookahead=2, stride=2, fc_layers=1)
    m = ConvDFSMN(**{**args, **kw}).eval()
    for mod in m.modules():  # non-trivial normalisation statistics
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    return m


@pytest.mark.parametrize("lookback,lookahead,stride", [(3, 2, 2), (2, 2, 1), (4, 0, 1), (0, 3, 3)])
def test_dfsmn_layer_is_the_papers_recurrence(lookback, lookahead, stride):
    """m_t = skip_t + p_t + sum_{i=0..N1} a_i p_{t-s*i} + sum_{j=1..N2} c_j p_{t+s*j}, zero outside."""
    torch.manual_seed(1)
    layer = DFSMNLayer(5, 7, 4, lookback, lookahead, stride)
    x, skip = torch.randn(2, 5, 23), torch.randn(2, 4, 23)
    with torch.no_grad():
        got = layer(x, skip)
        h = torch.relu(torch.einsum("oc,bct->bot", layer.hidden.weight[:, :, 0], x) + layer.hidden.bias[:, None])
        p = torch.einsum("oc,bct->bot", layer.proj.weight[:, :, 0], h) + layer.proj.bias[:, None]
        w = layer.memory.weight[:, 0, :]  # [C, N1 + 1 + N2]; tap k looks at t + s*(k - N1)
        want = skip + p
        T = x.shape[2]
        for t in range(T):
            for k in range(lookback + lookahead + 1):
                u = t + stride * (k - lookback)
                if 0 <= u < T:
                    want[:, :, t] += w[:, k] * p[:, :, u]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert layer.memory.bias is None and layer.memory.groups == 4


def test_shapes_lengths_and_log_probs():
    m = _tiny()
    for T in (1, 7, 50):
        y = m(torch.randn(3, 8, T))
        assert y.shape == (3, 5, T)
        torch.testing.assert_close(y.exp().sum(1), torch.ones(3, T))
    lengths = torch.tensor([50, 37, 1])
    assert torch.equal(output_lengths(m, lengths), lengths)  # every layer keeps the length
    assert _channels_first(m) and _channels_first(model_config(m))


def test_receptive_field_matches_context():
    m = _tiny()
    past, future = m.context()
    assert (past, future) == (1 + 3 * 2 * 3, 1 + 3 * 2 * 2)
    x = torch.randn(1, 8, 80)
    with torch.no_grad():
        base = m(x)
        x2 = x.clone()
        x2[0, :, 40] += 1.0
        changed = torch.nonzero((m(x2) - base).abs().amax(1)[0] > 0).flatten()
    # input frame 40 reaches exactly the outputs t with t - past <= 40 <= t + future
    assert changed.min().item() == 40 - future and changed.max().item() == 40 + past


def test_config_round_trip_and_sizes():
    m = _tiny(hidden_kernel=3)
    cfg = model_config(m)
    assert cfg["class"] == "ConvDFSMN" and cfg["kwargs"]["hidden_kernel"] == 3
    again = build_model(cfg)
    again.load_state_dict(m.state_dict())
    x = torch.randn(2, 8, 30)
    torch.testing.assert_close(again.eval()(x), m(x))
    full, small = ZOO["convdfsmn"][0](), ZOO["convdfsmn-small"][0]()
    assert sum(p.numel() for p in full.parameters()) == 27_303_998
    assert sum(p.numel() for p in small.parameters()) == 381_998
    assert full(example_input("convdfsmn")).shape == (1, 62, 400)
    with pytest.raises(ValueError, match="odd"):
        ConvDFSMN(conv_kernel=4)


@pytest.mark.parametrize("lookahead", [5, 10], ids=["asymmetric-memory", "symmetric-memory"])
def test_compiled_matches_pytorch(lookahead):
    import wispy

    torch.manual_seed(0)
    m = convdfsmn_small(lookahead=lookahead)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 40, 120)
    T = torch.export.Dim("T", min=8, max=100_000)
    cm = wispy.compile_model(m, (x,), dynamic_shapes={"x": {2: T}})
    for frames in (120, 9, 333):
        xi = torch.randn(1, 40, frames)
        with torch.no_grad():
            ref = m(xi).numpy()
        out = np.asarray(cm(xi.numpy()))
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() < 1e-4
