"""Makes the demo utterance shipped in wispy/models/data: TIMIT's SA1 sentence spoken by
espeak-ng (en-us), resampled to 16 kHz, and its normalised 40-dim log-mel features."""
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from wispy.models.features import log_mel, normalize

TEXT = "she had your dark suit in greasy wash water all year"
out = Path(__file__).resolve().parent.parent / "wispy" / "models" / "data"
out.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    raw = Path(tmp) / "raw.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), TEXT], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out / "demo_utterance.wav")],
                   check=True)
with wave.open(str(out / "demo_utterance.wav")) as w:
    audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
feats = normalize(log_mel(audio, n_mels=40))
np.save(out / "demo_features.npy", feats)
(out / "demo_utterance.txt").write_text(TEXT + "\n")
print(f"wrote {out}: {audio.size / 16000:.2f} s, features {feats.shape}")
