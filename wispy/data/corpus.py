"""A deterministic, TIMIT-like phone-recognition corpus synthesised with espeak-ng.

No speech corpus can be downloaded where wispy is developed, so it makes its own:

* Sentences: 3-9 words drawn from ``words.txt`` (shipped beside this file; see
  `build_word_list`), lowercase, no punctuation.
* Speakers: a speaker is an (English voice, voice variant) pair, e.g. ``en-us+f3``.
  The English voices are espeak-ng's own (non-MBROLA) ones from ``espeak-ng --voices=en``
  (accents: British, American, Scottish, Lancaster, RP, West Midlands, Caribbean, New York
  City); the variants (timbres: f1..f5, m1..m8, klatt, whisper, ...) come from
  ``espeak-ng --voices=variant``. The *variants* are split into train/valid/test
  (80/10/10 by default, shuffled by the seed) and every accent is combined with every
  variant of its split, so the splits share no speaker and not even a timbre, while every
  accent is present in every split (like TIMIT's dialect regions).
* Per utterance: a random speaker of its split, speed 130-190 words per minute and pitch
  30-70 (espeak's 0-99 scale). espeak-ng writes a 22.05 kHz wav and, in the same run, the
  IPA transcription of what it spoke (``--ipa --sep=_``); sox converts the wav to 16 kHz
  mono 16-bit without dither (``-R -D``, so the bytes are reproducible); the audio is then
  peak-normalised to -6 dBFS.
* Phones: the IPA output is tokenised by espeak's own phoneme separator (``_``); stress
  marks (ˈ ˌ), length marks (ː), diacritics (syllabic, dental, palatalised, tie) and word
  boundaries (spaces, clause breaks) are dropped, then every espeak phoneme is folded into
  the fixed 45-phone inventory `INVENTORY` (TIMIT-style folding, by sound rather than by
  word: e.g. ``ᵻ``->``ɪ``, ``ɐ``->``ə``, ``a``->``æ``, ``əʊ``->``oʊ``, ``ɑːɹ``->``ɑ ɹ``,
  ``iə``->``ɪ ə``, syllabic ``əl``->``l``, flap ``ɾ`` kept). ``PHONES`` = ["<blank>"] +
  INVENTORY, so index 0 is the CTC blank; ``phones.txt`` in the corpus lists it, one per line.
* Noise (optional): ``snr_db=None`` keeps the audio clean; otherwise white Gaussian noise or
  babble (the sum of 6 other utterances of the same split at random offsets) is scaled so that
  10*log10(sum(clean^2) / sum(noise^2)) == snr_db over the whole file, and added (the noise is
  rounded to int16 on its own, so noisy - clean is exactly the quantised noise).

Layout: ``out_dir/{train,valid,test}/<id>.wav`` + ``manifest.jsonl`` per split (one JSON
record per utterance: id, speaker, voice, variant, speed, pitch, text, phones, snr_db, noise,
n_samples, wav, ipa), ``phones.txt`` and ``corpus.json`` (config, inventory, speakers per
split). ``corpus.json`` is written last: it marks a complete corpus.

Everything is a function of the seed (and the installed espeak-ng, whose version, voices and
variants are part of the config): utterance i of a split draws from its own generator seeded
by (seed, split, i), so a small corpus is a prefix of a bigger one with the same seed.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from wispy._files import atomic_write
from wispy.errors import AudioError

SAMPLE_RATE = 16000
SPLITS = ("train", "valid", "test")
CORPUS_VERSION = 1
WORDS_FILE = Path(__file__).with_name("words.txt")
PEAK = 0.5  # clean audio is peak-normalised to -6 dBFS: headroom for the noise
BABBLE_TALKERS = 6

# ---------------------------------------------------------------------------------------------
# Phone inventory and the folding of espeak-ng's IPA phonemes into it

CONSONANTS = ["p", "b", "t", "d", "k", "ɡ", "f", "v", "θ", "ð", "s", "z", "ʃ", "ʒ", "h", "tʃ", "dʒ",
              "m", "n", "ŋ", "l", "ɹ", "w", "j", "ɾ"]
VOWELS = ["i", "ɪ", "e", "ɛ", "æ", "ɑ", "ɒ", "ɔ", "o", "ʌ", "ə", "ɜ", "ɚ", "u", "ʊ",
          "eɪ", "aɪ", "ɔɪ", "aʊ", "oʊ"]
INVENTORY = CONSONANTS + VOWELS
BLANK = "<blank>"
PHONES = [BLANK] + INVENTORY

# Dropped characters: stress, length, syllabic/dental/palatal/non-syllabic diacritics, ties.
_STRIP = re.compile("[ˈˌːˑ:\u0329\u032a\u02b2\u032f\u0361\u035c\u200d\u200c]")
# espeak-ng phonemes (after _STRIP) that are not inventory symbols -> inventory phones.
FOLD: dict[str, tuple[str, ...]] = {
    # consonants
    "g": ("ɡ",), "r": ("ɹ",), "ɻ": ("ɹ",), "ʍ": ("w",), "ʔ": ("t",), "x": ("k",), "ɬ": ("l",),
    "ɫ": ("l",), "əl": ("l",), "n̩": ("n",), "ts": ("t", "s"), "ç": ("h",),
    # monophthongs
    "ᵻ": ("ɪ",), "ɐ": ("ə",), "a": ("æ",), "ɨ": ("ɪ",), "ʉ": ("u",), "ɵ": ("ɜ",), "ɝ": ("ɜ",),
    "aa": ("ɑ",), "y": ("i",), "ø": ("ɜ",), "œ": ("ɛ",), "ɘ": ("ə",),
    # diphthongs
    "əʊ": ("oʊ",), "ʌʊ": ("oʊ",), "ou": ("oʊ",), "æʊ": ("aʊ",), "ʌʉ": ("aʊ",), "au": ("aʊ",),
    "oɪ": ("ɔɪ",), "əɪ": ("ɔɪ",), "ɑɪ": ("aɪ",), "ʌɪ": ("aɪ",), "ai": ("aɪ",), "ei": ("eɪ",),
    "əu": ("u",), "ɛɪ": ("eɪ",),
    # centring diphthongs and triphthongs: split
    "iə": ("ɪ", "ə"), "ɪə": ("ɪ", "ə"), "eə": ("ɛ", "ə"), "ɛə": ("ɛ", "ə"), "ʊə": ("ʊ", "ə"),
    "ɑə": ("ɑ", "ə"), "oə": ("o", "ə"), "ɔə": ("ɔ", "ə"), "aɪə": ("aɪ", "ə"), "aʊə": ("aʊ", "ə"),
    "aɪɚ": ("aɪ", "ɚ"), "aʊɚ": ("aʊ", "ɚ"),
    # r-coloured vowels (American): vowel + ɹ
    "ɑɹ": ("ɑ", "ɹ"), "ɔɹ": ("ɔ", "ɹ"), "oɹ": ("o", "ɹ"), "ɛɹ": ("ɛ", "ɹ"), "ɪɹ": ("ɪ", "ɹ"),
    "ʊɹ": ("ʊ", "ɹ"), "ʌɹ": ("ʌ", "ɹ"), "ʉɹ": ("u", "ɹ"), "əɹ": ("ə", "ɹ"), "ɜɹ": ("ɜ", "ɹ"),
    "eɹ": ("ɛ", "ɹ"), "iɹ": ("ɪ", "ɹ"), "uɹ": ("ʊ", "ɹ"), "aɹ": ("ɑ", "ɹ"),
}
_KNOWN = set(INVENTORY) | set(FOLD)


def _fold_token(tok: str) -> list[str]:
    """One espeak phoneme (stress/length already stripped) -> inventory phones. Unknown
    multi-character tokens are split greedily (longest match first) into known pieces;
    characters nothing matches are dropped."""
    if tok in INVENTORY:
        return [tok]
    if tok in FOLD:
        return list(FOLD[tok])
    out, i = [], 0
    while i < len(tok):
        for j in range(len(tok), i, -1):
            if tok[i:j] in _KNOWN:
                out += _fold_token(tok[i:j])
                i = j
                break
        else:
            i += 1  # unknown character: dropped
    return out


def ipa_to_phones(ipa: str) -> list[str]:
    """espeak-ng ``--ipa --sep=_`` output -> phone sequence in `INVENTORY`.

    Phonemes are separated by ``_`` within a word and by whitespace between words and
    clauses; word boundaries, stress and length marks are not kept, nor espeak's language
    switch marks such as ``(fr)``."""
    phones: list[str] = []
    for tok in re.split(r"[_\s]+", re.sub(r"\([a-z-]+\)", " ", ipa)):
        tok = _STRIP.sub("", tok)
        if tok:
            phones += _fold_token(tok)
    return phones


# ---------------------------------------------------------------------------------------------
# espeak-ng voices, variants, speakers


def _espeak(*args: str) -> str:
    return subprocess.run(["espeak-ng", *args], check=True, capture_output=True, text=True).stdout


@lru_cache(maxsize=None)
def espeak_version() -> str:
    m = re.search(r"text-to-speech:\s*(\S+)", _espeak("--version"))
    return m.group(1) if m else "unknown"


@lru_cache(maxsize=None)
def english_voices() -> tuple[str, ...]:
    """espeak-ng's own English voices (language codes), MBROLA voices excluded (they need
    the mbrola program and its voice files), sorted."""
    voices = set()
    for line in _espeak("--voices=en").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and not cols[4].startswith("mb/") and cols[1].startswith("en"):
            voices.add(cols[1])
    return tuple(sorted(voices))


@lru_cache(maxsize=None)
def voice_variants() -> tuple[str, ...]:
    """espeak-ng's voice variants (the names after '+', e.g. f3, klatt, whisper), sorted."""
    out = set()
    for line in _espeak("--voices=variant").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            out.add(cols[4][3:])
    return tuple(sorted(out))


def split_speakers(seed: int, voices=None, variants=None,
                   fractions=(0.8, 0.1, 0.1)) -> dict[str, list[tuple[str, str]]]:
    """Speakers (voice, variant) per split: the variants are shuffled by `seed` and cut by
    `fractions` (valid and test get at least one each); every voice goes with every variant
    of a split, so no speaker (nor timbre) is in two splits."""
    voices = sorted(voices if voices is not None else english_voices())
    variants = sorted(variants if variants is not None else voice_variants())
    order = [variants[k] for k in np.random.default_rng([seed, 7919]).permutation(len(variants))]
    n_valid = max(1, round(fractions[1] * len(order)))
    n_test = max(1, round(fractions[2] * len(order)))
    parts = {"test": order[:n_test], "valid": order[n_test:n_test + n_valid],
             "train": order[n_test + n_valid:]}
    return {s: [(v, var) for v in voices for var in sorted(parts[s])] for s in SPLITS}


# ---------------------------------------------------------------------------------------------
# Word list and sentences

_BLOCKED = set("slut fuck shit cunt bitch whore dick cock piss fag rape dyke twat wank damn prick "
               "pussy chink gook kike spic retard queer homo boob porn sex pimp molest nigger".split())
_CORE = """the of and to in is it that was for on are with as his they be at one have this from
or had by word but what some we can out other were all there when up use your how said an each
she which do their time if will way about many then them write would like so these her long make
thing see him two has look more day could go come did number sound no most people my over know
water than call first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our under name very
through just form great think say help low line differ turn cause much mean before move right boy
old too same tell does set three want air well also play small end put home read hand port large
spell add even land here must big high such follow act why ask men change went light kind off
need house picture try us again animal point mother world near build self earth father head stand
own page should country found answer school grow study still learn plant cover food sun four
between state keep eye never last let thought city tree cross farm hard start might story saw far
sea draw left late run while press close night real life few north open seem together next white
children begin got walk example ease paper group always music those both mark often letter until
mile river car feet care second book carry took science eat room friend began idea fish mountain
stop once base hear horse cut sure watch color face wood main enough plain girl usual young ready
above ever red list though feel talk bird soon body dog family direct pose leave song measure door
product black short numeral class wind question happen complete ship area half rock order fire
south problem piece told knew pass since top whole king space heard best hour better true during
hundred five remember step early hold west ground interest reach fast verb sing listen six table
travel less morning ten simple several vowel toward war lay against pattern slow center love person
money serve appear road map rain rule govern pull cold notice voice unit power town fine certain
fly fall lead cry dark machine note wait plan figure star box noun field rest correct able pound
done beauty drive stood contain front teach week final gave green quick develop ocean warm free
minute strong special mind behind clear tail produce fact street inch multiply nothing course stay
wheel full force blue object decide surface deep moon island foot system busy test record boat
common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate hot miss
brought heat snow tire bring yes distant fill east paint language among""".split()


def build_word_list(dict_path: str = "/usr/share/dict/words", out: Path = WORDS_FILE) -> Path:
    """Regenerates ``words.txt``: ~300 very common English words (written out above) plus the
    base words of Debian's ``wamerican`` dictionary (SCOWL size 50) that look common: lowercase
    alphabetic, 3-7 letters, with a vowel, and with at least two inflected forms (-s, -ed/-d,
    -ing) in the dictionary (nouns/verbs in use rather than rare words); a short blocklist
    removes offensive words. Sorted, one per line."""
    low = {w for w in Path(dict_path).read_text(errors="ignore").split() if re.fullmatch(r"[a-z]+", w)}

    def inflections(w):
        return ((w + "s" in low) + (w + "ed" in low or w + "d" in low)
                + (w + "ing" in low or w[:-1] + "ing" in low))

    base = {w for w in low if 3 <= len(w) <= 7 and re.search("[aeiouy]", w) and inflections(w) >= 2}
    words = sorted((base | {w for w in _CORE if w.isalpha()}) - _BLOCKED)
    Path(out).write_text("\n".join(words) + "\n")
    return Path(out)


@lru_cache(maxsize=None)
def word_list() -> tuple[str, ...]:
    return tuple(w for w in WORDS_FILE.read_text().split() if w)


# ---------------------------------------------------------------------------------------------
# Synthesis, noise


def _read_wav(path) -> np.ndarray:
    """The int16 samples of a 16 kHz mono 16-bit WAV; any other file is an `AudioError`."""
    try:
        w = wave.open(str(path))
    except (wave.Error, EOFError) as e:
        raise AudioError(f"{path} is not a readable WAV file ({e}); give a 16 kHz mono 16-bit PCM WAV") from None
    with w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        if rate != SAMPLE_RATE:
            raise AudioError(f"{path} is sampled at {rate} Hz, but wispy's features and models expect "
                             f"{SAMPLE_RATE} Hz: resample it first, e.g. `sox {path} -r {SAMPLE_RATE} out.wav`")
        if channels != 1 or width != 2:
            raise AudioError(f"{path} has {channels} channel(s) of {8 * width}-bit samples; wispy reads mono "
                             f"16-bit PCM: convert it first, e.g. `sox {path} -c 1 -b 16 out.wav`")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def _write_wav(path, audio_i16: np.ndarray, sample_rate: int = SAMPLE_RATE):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(audio_i16, dtype="<i2").tobytes())


def read_audio(path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV (a corpus utterance) as float32 in [-1, 1).

    Any other rate is refused with an `AudioError` naming the file, its rate and the 16 kHz
    expected, never resampled: the log-mel features assume 16 kHz (featurising 8 kHz audio as
    16 kHz would halve every frequency and double the speed), and a resampled telephone-band
    file still has nothing above 4 kHz, which the models never saw in training; the user
    decides how to resample (the message gives a sox command)."""
    return _read_wav(path).astype(np.float32) / 32768.0


def synthesize(text: str, voice: str, variant: str, speed: int, pitch: int) -> tuple[np.ndarray, str]:
    """espeak-ng + sox -> (16 kHz int16 audio peak-normalised to -6 dBFS, espeak's IPA)."""
    with tempfile.TemporaryDirectory(prefix="wispy-tts-") as tmp:
        raw, wav = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
        ipa = subprocess.run(["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(speed), "-p", str(pitch),
                              "--ipa", "--sep=_", "-w", str(raw), text],
                             check=True, capture_output=True, text=True).stdout
        subprocess.run(["sox", "-R", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)],
                       check=True, capture_output=True)
        audio = _read_wav(wav).astype(np.float64)
    peak = np.abs(audio).max()
    if peak > 0:
        audio *= PEAK * 32768.0 / peak
    return np.round(audio).astype(np.int16), ipa


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """The noise (float, same length as `clean`) scaled so that
    10*log10(sum(clean^2) / sum(scaled^2)) == snr_db; returns the scaled noise (add it)."""
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    assert clean.shape == noise.shape
    p_clean, p_noise = np.sum(clean ** 2), np.sum(noise ** 2)
    if p_noise == 0 or p_clean == 0:
        return np.zeros_like(clean)
    return noise * np.sqrt(p_clean / (p_noise * 10.0 ** (snr_db / 10.0)))


def _noise_for(kind: str, n: int, rng: np.random.Generator, others: list[Path]) -> np.ndarray:
    if kind == "white" or not others:
        return rng.standard_normal(n)
    out = np.zeros(n)
    for path in others:
        a = _read_wav(path).astype(np.float64)
        a /= np.sqrt(np.mean(a ** 2)) + 1e-12
        a = np.tile(a, -(-n // a.size) + 1)
        start = int(rng.integers(a.size - n + 1))
        out += a[start:start + n]
    return out


def _add_noise(clean_path: Path, out_path: Path, kind: str, snr_db: float, rng, others):
    clean = _read_wav(clean_path)
    noise = mix_at_snr(clean, _noise_for(kind, clean.size, rng, others), snr_db)
    noisy = np.clip(clean.astype(np.int64) + np.round(noise).astype(np.int64), -32768, 32767)
    _write_wav(out_path, noisy.astype(np.int16))


# ---------------------------------------------------------------------------------------------
# Corpus generation


def _plan(split: str, i: int, seed: int, speakers, words, speed_range, pitch_range) -> dict:
    rng = np.random.default_rng([seed, SPLITS.index(split), i])
    voice, variant = speakers[int(rng.integers(len(speakers)))]
    n_words = int(rng.integers(3, 10))
    text = " ".join(words[int(k)] for k in rng.integers(len(words), size=n_words))
    return {"id": f"{split}-{i:05d}", "speaker": f"{voice}+{variant}", "voice": voice, "variant": variant,
            "speed": int(rng.integers(speed_range[0], speed_range[1] + 1)),
            "pitch": int(rng.integers(pitch_range[0], pitch_range[1] + 1)), "text": text}


def _make_config(n_train, n_valid, n_test, seed, snr_db, noise, speed_range, pitch_range, fractions) -> dict:
    return {"version": CORPUS_VERSION, "n_train": int(n_train), "n_valid": int(n_valid), "n_test": int(n_test),
            "seed": int(seed), "snr_db": None if snr_db is None else float(snr_db),
            "noise": noise if snr_db is not None else None,
            "speed_range": list(speed_range), "pitch_range": list(pitch_range),
            "speaker_fractions": list(fractions), "sample_rate": SAMPLE_RATE, "peak": PEAK,
            "espeak_ng": espeak_version(), "voices": list(english_voices()), "variants": list(voice_variants()),
            "words_sha1": hashlib.sha1(WORDS_FILE.read_bytes()).hexdigest(), "phones": PHONES}


def _is_complete(out_dir: Path, config: dict) -> bool:
    try:
        meta = json.loads((out_dir / "corpus.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("config") == config and all((out_dir / s / "manifest.jsonl").exists() for s in SPLITS)


def generate_corpus(out_dir, n_train: int = 4000, n_valid: int = 400, n_test: int = 400, seed: int = 0,
                    snr_db: float | None = None, noise: str = "white", workers: int = 2, progress: bool = True,
                    speed_range=(130, 190), pitch_range=(30, 70), fractions=(0.8, 0.1, 0.1)) -> Path:
    """Synthesises the corpus into `out_dir` (see the module docstring) and returns it.

    Idempotent: returns at once if `out_dir` already holds a complete corpus of the same
    config; a different config there is replaced (only the split folders, phones.txt and
    corpus.json are removed). `noise` is "white" or "babble" (used when snr_db is not None).
    `workers` threads run espeak-ng/sox processes."""
    from tqdm import tqdm

    if noise not in ("white", "babble"):
        raise ValueError(f"noise must be 'white' or 'babble', not {noise!r}")
    out_dir = Path(out_dir)
    config = _make_config(n_train, n_valid, n_test, seed, snr_db, noise, speed_range, pitch_range, fractions)
    if _is_complete(out_dir, config):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("corpus.json", "phones.txt"):
        (out_dir / name).unlink(missing_ok=True)
    for s in SPLITS:
        shutil.rmtree(out_dir / s, ignore_errors=True)
    clean_dir = out_dir / ".clean"
    shutil.rmtree(clean_dir, ignore_errors=True)

    speakers = split_speakers(seed, fractions=fractions)
    words = word_list()
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    plans = [_plan(s, i, seed, speakers[s], words, speed_range, pitch_range) for s in SPLITS for i in range(counts[s])]
    stage = clean_dir if snr_db is not None else out_dir
    for s in SPLITS:
        (out_dir / s).mkdir(parents=True)
        (stage / s).mkdir(parents=True, exist_ok=True)

    def job(rec):
        audio, ipa = synthesize(rec["text"], rec["voice"], rec["variant"], rec["speed"], rec["pitch"])
        split = rec["id"].split("-")[0]
        _write_wav(stage / split / f"{rec['id']}.wav", audio)
        return {**rec, "phones": ipa_to_phones(ipa), "snr_db": config["snr_db"], "noise": config["noise"],
                "n_samples": int(audio.size), "wav": f"{rec['id']}.wav", "ipa": " ".join(ipa.split())}

    with ThreadPoolExecutor(max(1, int(workers))) as pool:
        records = list(tqdm(pool.map(job, plans), total=len(plans), desc="synthesising", unit="utt",
                            disable=not progress))

    if snr_db is not None:
        def noisy(k):
            rec = records[k]
            split, i = rec["id"].split("-")[0], int(rec["id"].split("-")[1])
            rng = np.random.default_rng([seed, SPLITS.index(split), i, 1])
            others = []
            if noise == "babble":
                pool_ids = [j for j in range(counts[split]) if j != i]
                pick = rng.permutation(len(pool_ids))[:BABBLE_TALKERS]
                others = [clean_dir / split / f"{split}-{pool_ids[j]:05d}.wav" for j in pick]
            _add_noise(clean_dir / split / rec["wav"], out_dir / split / rec["wav"], noise, snr_db, rng, others)

        with ThreadPoolExecutor(max(1, int(workers))) as pool:
            list(tqdm(pool.map(noisy, range(len(records))), total=len(records), desc=f"adding {noise} noise",
                      unit="utt", disable=not progress))
        shutil.rmtree(clean_dir)

    for s in SPLITS:
        with open(out_dir / s / "manifest.jsonl", "w") as f:
            for rec in records:
                if rec["id"].startswith(s + "-"):
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    (out_dir / "phones.txt").write_text("\n".join(PHONES) + "\n")
    meta = {"config": config, "phones": PHONES, "counts": counts,
            "speakers": {s: [f"{v}+{var}" for v, var in speakers[s]] for s in SPLITS}}
    (out_dir / "corpus.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return out_dir


# ---------------------------------------------------------------------------------------------
# Loading


def read_manifest(corpus_dir, split: str) -> list[dict]:
    with open(Path(corpus_dir) / split / "manifest.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_phones(corpus_dir) -> list[str]:
    return [p for p in (Path(corpus_dir) / "phones.txt").read_text().split("\n") if p]


def load_split(corpus_dir, split: str, feature: str = "logmel", n_mels: int = 40, n_mfcc: int = 13,
               normalize: bool = False) -> list[tuple[np.ndarray, list[int], dict]]:
    """[(features [T, n_feats] float32, phone ids, manifest record)] of one split.

    `feature` is "logmel" (n_mels dims) or "mfcc" (n_mfcc dims from n_mels filters), computed
    with wispy.data.features and cached in ``<split>/features_<feature>...npz`` beside the
    wavs. `normalize` applies per-utterance mean/variance normalisation (not cached). Phone ids
    index ``phones.txt`` (0 = CTC blank)."""
    from wispy.data import features as F

    corpus_dir = Path(corpus_dir)
    records = read_manifest(corpus_dir, split)
    index = {p: k for k, p in enumerate(read_phones(corpus_dir))}
    if feature == "logmel":
        tag, fn = f"logmel{n_mels}", lambda a: F.log_mel(a, n_mels=n_mels)
    elif feature == "mfcc":
        tag, fn = f"mfcc{n_mfcc}x{n_mels}", lambda a: F.mfcc(a, n_mfcc=n_mfcc, n_mels=n_mels)
    else:
        raise ValueError(f"feature must be 'logmel' or 'mfcc', not {feature!r}")
    cache = corpus_dir / split / f"features_{tag}.npz"
    feats: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as z:
            feats = {k: z[k] for k in z.files}
    if any(r["id"] not in feats for r in records):
        feats = {r["id"]: fn(read_audio(corpus_dir / split / r["wav"])) for r in records}
        # a temporary file of its own: two runs that start on a fresh corpus together both
        # compute the features, and each must still find its file to move into place
        atomic_write(cache, lambda f: np.savez(f, **feats))
    out = []
    for r in records:
        x = feats[r["id"]].astype(np.float32)
        if normalize:
            x = F.normalize(x)
        out.append((x, [index[p] for p in r["phones"]], r))
    return out
