"""Audio that is not 16 kHz mono 16-bit PCM is refused with a message naming the file and what it is."""
from __future__ import annotations

import wave

import numpy as np
import pytest

from wispy.data.corpus import read_audio
from wispy.errors import AudioError, WispyError


def _wav(path, rate: int, channels: int = 1, width: int = 2, seconds: float = 0.25):
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    data = np.repeat(tone[:, None], channels, axis=1)
    if width == 1:
        data = (data // 256 + 128).astype(np.uint8)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def test_16k_mono_is_read(tmp_path):
    audio = read_audio(_wav(tmp_path / "ok.wav", 16000))
    assert audio.dtype == np.float32 and audio.shape == (4000,) and 0.29 < np.abs(audio).max() < 0.31


def test_8k_is_refused_naming_file_and_rates(tmp_path):
    path = _wav(tmp_path / "phone.wav", 8000)
    with pytest.raises(AudioError) as e:
        read_audio(path)
    assert str(path) in str(e.value) and "8000 Hz" in str(e.value) and "16000 Hz" in str(e.value)


@pytest.mark.parametrize("channels, width, says", [(2, 2, "2 channel"), (1, 1, "8-bit")])
def test_stereo_and_8_bit_are_refused(tmp_path, channels, width, says):
    with pytest.raises(AudioError, match=says):
        read_audio(_wav(tmp_path / "x.wav", 16000, channels, width))


@pytest.mark.parametrize("content", [b"", b"RIFF....not really"])
def test_not_a_wav(tmp_path, content):
    path = tmp_path / "x.wav"
    path.write_bytes(content)
    with pytest.raises(WispyError, match="not a readable WAV"):
        read_audio(path)
