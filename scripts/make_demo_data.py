"""Makes the demo utterance shipped in wispy/models/data: TIMIT's SA1 sentence spoken by
espeak-ng in the corpus's own way (wispy.data.corpus.synthesize: 16 kHz, peak-normalised)
by an en-us speaker from the corpus's *test* split (seed 0), so the shipped model never
heard this voice in training; plus espeak-ng's phone transcription as the reference."""
import json
from pathlib import Path

from wispy.data.corpus import _write_wav, ipa_to_phones, split_speakers, synthesize

TEXT = "she had your dark suit in greasy wash water all year"
out = Path(__file__).resolve().parent.parent / "wispy" / "models" / "data"
voice, variant = next(s for s in split_speakers(0)["test"] if s[0] == "en-us")
audio, ipa = synthesize(TEXT, voice, variant, speed=150, pitch=50)
_write_wav(out / "demo_utterance.wav", audio)
(out / "demo_utterance.txt").write_text(TEXT + "\n")
(out / "demo_utterance.json").write_text(json.dumps(
    {"text": TEXT, "voice": voice, "variant": variant, "speed": 150, "pitch": 50,
     "split": "test (seed 0)", "ipa": ipa.strip(), "phones": ipa_to_phones(ipa)}, ensure_ascii=False, indent=1))
print(f"wrote {out}: {voice}+{variant}, {audio.size / 16000:.2f} s, {len(ipa_to_phones(ipa))} phones")
