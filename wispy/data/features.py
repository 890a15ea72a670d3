"""Speech features: log-mel filterbank and MFCC with the standard parameters
(16 kHz audio, 25 ms Hann windows, 10 ms hop, 512-point FFT, HTK mel scale)."""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
WIN_MS, HOP_MS, N_FFT = 25, 10, 512


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = 40, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale, [n_mels, n_fft // 2 + 1]."""
    fmax = fmax or sample_rate / 2
    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz = mel_to_hz(mels)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    fb = np.zeros((n_mels, bins.size))
    for i in range(n_mels):
        lo, mid, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (bins - lo) / (mid - lo)
        down = (hi - bins) / (hi - mid)
        fb[i] = np.maximum(0.0, np.minimum(up, down))
    return fb


def power_spectrogram(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """|STFT|^2 of `audio` (float, mono), frames [T, n_fft // 2 + 1]."""
    audio = np.asarray(audio, dtype=np.float64)
    win = int(sample_rate * WIN_MS / 1000)
    hop = int(sample_rate * HOP_MS / 1000)
    if audio.size < win:
        audio = np.pad(audio, (0, win - audio.size))
    n = 1 + (audio.size - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = audio[idx] * np.hanning(win + 2)[1:-1]  # symmetric Hann without zero ends
    return np.abs(np.fft.rfft(frames, n=N_FFT)) ** 2


def log_mel(audio: np.ndarray, n_mels: int = 40, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-mel filterbank energies [T, n_mels] (natural log, floored at 1e-10)."""
    spec = power_spectrogram(audio, sample_rate)
    return np.log(np.maximum(spec @ mel_filterbank(n_mels, N_FFT, sample_rate).T, 1e-10)).astype(np.float32)


def mfcc(audio: np.ndarray, n_mfcc: int = 13, n_mels: int = 40, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """MFCCs [T, n_mfcc]: orthonormal DCT-II of the log-mel energies."""
    lm = log_mel(audio, n_mels, sample_rate).astype(np.float64)
    k = np.arange(n_mels)
    basis = np.cos(np.pi / n_mels * (k[None, :] + 0.5) * np.arange(n_mfcc)[:, None])
    basis *= np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return (lm @ basis.T).astype(np.float32)


def normalize(feats: np.ndarray) -> np.ndarray:
    """Per-utterance mean and variance normalisation over time."""
    return ((feats - feats.mean(0)) / (feats.std(0) + 1e-5)).astype(np.float32)
