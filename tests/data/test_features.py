"""wispy.data.features against an independent float64 reference written with plain loops
(explicit DFT, HTK mel triangles evaluated bin by bin, DCT-II by its definition)."""
import math

import numpy as np
import pytest

from wispy.data import features as F

SR, WIN, HOP, NFFT = 16000, 400, 160, 512


def ref_frames(n_samples):
    """Documented frame count: 1 + (N - 400) // 160 for N >= 400 (25 ms windows, 10 ms hop,
    no padding), and 1 (zero-padded) for shorter input."""
    return 1 if n_samples < WIN else 1 + (n_samples - WIN) // HOP


def ref_power(audio):
    audio = [float(x) for x in audio] + [0.0] * max(0, WIN - len(audio))
    window = [0.5 - 0.5 * math.cos(2 * math.pi * (n + 1) / (WIN + 1)) for n in range(WIN)]  # Hann, no zero ends
    cos = np.array([[math.cos(2 * math.pi * k * n / NFFT) for n in range(WIN)] for k in range(NFFT // 2 + 1)])
    sin = np.array([[math.sin(2 * math.pi * k * n / NFFT) for n in range(WIN)] for k in range(NFFT // 2 + 1)])
    out = []
    for t in range(ref_frames(len(audio))):
        frame = np.array([audio[t * HOP + n] * window[n] for n in range(WIN)])
        out.append((cos @ frame) ** 2 + (sin @ frame) ** 2)
    return np.array(out)


def ref_filterbank(n_mels, fmin=20.0, fmax=8000.0):
    mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    lo, hi = mel(fmin), mel(fmax)
    edges = [hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    fb = np.zeros((n_mels, NFFT // 2 + 1))
    for m in range(n_mels):
        a, b, c = edges[m], edges[m + 1], edges[m + 2]
        for k in range(NFFT // 2 + 1):
            f = k * SR / NFFT
            if a < f <= b:
                fb[m, k] = (f - a) / (b - a)
            elif b < f < c:
                fb[m, k] = (c - f) / (c - b)
    return fb


def ref_log_mel(audio, n_mels):
    return np.log(np.maximum(ref_power(audio) @ ref_filterbank(n_mels).T, 1e-10))


def ref_mfcc(audio, n_mfcc, n_mels):
    lm = ref_log_mel(audio, n_mels)
    out = np.zeros((lm.shape[0], n_mfcc))
    for t in range(lm.shape[0]):
        for q in range(n_mfcc):
            scale = math.sqrt(1.0 / n_mels) if q == 0 else math.sqrt(2.0 / n_mels)
            out[t, q] = scale * sum(lm[t, m] * math.cos(math.pi * q * (m + 0.5) / n_mels) for m in range(n_mels))
    return out


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(0)
    t = np.arange(4000) / SR  # 0.25 s: 23 frames
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t) + 0.01 * rng.standard_normal(t.size)
    return x.astype(np.float32)


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 559, 560, 16000, 16001])
def test_frame_count(n):
    assert F.log_mel(np.zeros(n, np.float32) + 0.01).shape == (ref_frames(n), 40)
    assert F.mfcc(np.zeros(n, np.float32) + 0.01).shape == (ref_frames(n), 13)


def test_filterbank_matches_reference():
    np.testing.assert_allclose(F.mel_filterbank(40), ref_filterbank(40), atol=1e-12)


@pytest.mark.parametrize("n_mels", [40, 80])
def test_log_mel_matches_reference(audio, n_mels):
    got = F.log_mel(audio, n_mels=n_mels)
    want = ref_log_mel(audio, n_mels)
    assert got.dtype == np.float32 and got.shape == want.shape == (23, n_mels)
    # float32 output of float64 maths: log energies agree to 1e-4 absolute
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_mfcc_matches_reference(audio):
    got = F.mfcc(audio, n_mfcc=13, n_mels=40)
    want = ref_mfcc(audio, 13, 40)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-5)


def test_short_input_is_zero_padded():
    x = np.full(100, 0.5, np.float32)
    np.testing.assert_allclose(F.log_mel(x), ref_log_mel(x, 40), atol=1e-4)
