"""The espeak-ng corpus: speaker-disjoint splits, determinism, transcriptions, audio, noise."""
import json
import shutil
import wave

import numpy as np
import pytest

from wispy.data import corpus as C
from wispy.data import generate_corpus, ipa_to_phones, load_split, mix_at_snr

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="needs espeak-ng and sox (scripts/setup_system.sh)")
SIZES = dict(n_train=12, n_valid=4, n_test=4)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    return {
        "a": generate_corpus(root / "a", seed=0, progress=False, **SIZES),
        "a2": generate_corpus(root / "a2", seed=0, progress=False, **SIZES),
        "b": generate_corpus(root / "b", seed=1, progress=False, **SIZES),
        "white": generate_corpus(root / "white", seed=0, snr_db=10, progress=False, **SIZES),
        "babble": generate_corpus(root / "babble", seed=0, snr_db=10, noise="babble", progress=False, **SIZES),
    }


def records(d):
    return {s: C.read_manifest(d, s) for s in C.SPLITS}


def wav_info(path):
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def test_layout_and_counts(corpora):
    d = corpora["a"]
    meta = json.loads((d / "corpus.json").read_text())
    assert meta["config"]["seed"] == 0 and meta["phones"] == C.PHONES
    assert (d / "phones.txt").read_text().split("\n")[:2] == ["<blank>", C.INVENTORY[0]]
    recs = records(d)
    assert [len(recs[s]) for s in C.SPLITS] == [12, 4, 4]
    keys = {"id", "speaker", "voice", "variant", "speed", "pitch", "text", "phones", "snr_db", "n_samples"}
    for s, rs in recs.items():
        for r in rs:
            assert keys <= set(r) and r["id"].startswith(s) and (d / s / r["wav"]).exists()
            assert r["speaker"] == f"{r['voice']}+{r['variant']}" and r["snr_db"] is None
            assert 130 <= r["speed"] <= 190 and 30 <= r["pitch"] <= 70 and 3 <= len(r["text"].split()) <= 9


def test_splits_share_no_speaker():
    sp = C.split_speakers(0)
    sets = {s: set(v) for s, v in sp.items()}
    assert not (sets["train"] & sets["valid"] or sets["train"] & sets["test"] or sets["valid"] & sets["test"])
    variants = {s: {var for _, var in v} for s, v in sp.items()}
    assert not (variants["train"] & variants["test"] or variants["train"] & variants["valid"]
                or variants["valid"] & variants["test"])
    for s in C.SPLITS:  # every accent in every split
        assert {v for v, _ in sp[s]} == set(C.english_voices())
    assert sp == C.split_speakers(0) and sp != C.split_speakers(1)


def test_generated_speakers_disjoint(corpora):
    meta = json.loads((corpora["a"] / "corpus.json").read_text())
    recs = records(corpora["a"])
    used = {s: {r["speaker"] for r in rs} for s, rs in recs.items()}
    for s in C.SPLITS:
        assert used[s] <= set(meta["speakers"][s])
    assert not (used["train"] & used["test"] or used["train"] & used["valid"] or used["valid"] & used["test"])


def test_same_seed_identical_bytes(corpora):
    a, a2 = corpora["a"], corpora["a2"]
    for s in C.SPLITS:
        assert (a / s / "manifest.jsonl").read_bytes() == (a2 / s / "manifest.jsonl").read_bytes()
        for r in C.read_manifest(a, s):
            assert (a / s / r["wav"]).read_bytes() == (a2 / s / r["wav"]).read_bytes()


def test_different_seed_differs(corpora):
    ra, rb = records(corpora["a"]), records(corpora["b"])
    for s in C.SPLITS:
        assert [r["text"] for r in ra[s]] != [r["text"] for r in rb[s]]
    assert json.loads((corpora["a"] / "corpus.json").read_text())["speakers"] != \
        json.loads((corpora["b"] / "corpus.json").read_text())["speakers"]


def test_idempotent(corpora):
    d = corpora["a"]
    stamp = (d / "corpus.json").stat().st_mtime_ns
    assert generate_corpus(d, seed=0, progress=False, **SIZES) == d
    assert (d / "corpus.json").stat().st_mtime_ns == stamp


def test_phones_in_inventory(corpora):
    inventory = set((corpora["a"] / "phones.txt").read_text().split("\n")[1:]) - {""}
    assert inventory == set(C.INVENTORY) and len(C.PHONES) == len(set(C.PHONES))
    for rs in records(corpora["a"]).values():
        for r in rs:
            assert r["phones"] and set(r["phones"]) <= inventory
            assert len(r["phones"]) >= 2 * len(r["text"].split())  # >= 2 phones per word here


def test_audio_format_and_duration(corpora):
    d = corpora["a"]
    for s, rs in records(d).items():
        for r in rs:
            rate, channels, width, frames = wav_info(d / s / r["wav"])
            assert (rate, channels, width, frames) == (16000, 1, 2, r["n_samples"])
            seconds = frames / 16000
            words = len(r["text"].split())
            # espeak's rate is words per minute (for ~5-letter words), plus ~0.2-0.5 s of silence
            assert 0.4 * words * 60 / r["speed"] < seconds < 3.0 * words * 60 / r["speed"] + 1.0
            audio = C.read_audio(d / s / r["wav"])
            assert abs(np.abs(audio).max() - C.PEAK) < 1e-3  # peak-normalised


def test_ipa_tokenisation():
    assert ipa_to_phones("ð_ə k_w_ˈɪ_k b_ɹ_ˈaʊ_n f_ˈɑː_k_s\ndʒ_ˈʌ_m_p_t") == \
        ["ð", "ə", "k", "w", "ɪ", "k", "b", "ɹ", "aʊ", "n", "f", "ɑ", "k", "s", "dʒ", "ʌ", "m", "p", "t"]
    assert ipa_to_phones("k_ˈɑːɹ f_ˈaɪə b_ˈɑː_t_əl ˌəʊ_v_ə") == \
        ["k", "ɑ", "ɹ", "f", "aɪ", "ə", "b", "ɑ", "t", "l", "oʊ", "v", "ə"]
    assert ipa_to_phones("(fr)b_ˈɔ_ʒ(en) ð_ə") == ["b", "ɔ", "ʒ", "ð", "ə"]  # language switch marks dropped
    assert ipa_to_phones("") == []


def test_mix_at_snr_exact():
    rng = np.random.default_rng(0)
    clean, noise = rng.standard_normal(1000), rng.uniform(-1, 1, 1000)
    for snr in (-5.0, 0.0, 10.0, 23.5):
        scaled = mix_at_snr(clean, noise, snr)
        assert 10 * np.log10(np.sum(clean ** 2) / np.sum(scaled ** 2)) == pytest.approx(snr, abs=1e-9)


@pytest.mark.parametrize("kind", ["white", "babble"])
def test_noise_at_10_db(corpora, kind):
    clean_dir, noisy_dir = corpora["a"], corpora[kind]
    for s in C.SPLITS:
        clean_recs, noisy_recs = C.read_manifest(clean_dir, s), C.read_manifest(noisy_dir, s)
        for rc, rn in zip(clean_recs, noisy_recs):
            assert rn["snr_db"] == 10.0 and rn["noise"] == kind
            assert {k: v for k, v in rc.items() if k not in ("snr_db", "noise")} == \
                {k: v for k, v in rn.items() if k not in ("snr_db", "noise")}
            clean = C._read_wav(clean_dir / s / rc["wav"]).astype(np.float64)
            noisy = C._read_wav(noisy_dir / s / rn["wav"]).astype(np.float64)
            assert np.abs(noisy).max() < 32767  # no clipping
            snr = 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy - clean) ** 2))
            assert abs(snr - 10.0) < 0.1, (rn["id"], snr)


def test_load_split_features_and_cache(corpora):
    d = corpora["a"]
    items = load_split(d, "valid")
    assert len(items) == 4
    for feats, ids, rec in items:
        assert feats.dtype == np.float32 and feats.shape == (1 + (rec["n_samples"] - 400) // 160, 40)
        assert np.isfinite(feats).all()
        assert ids == [C.PHONES.index(p) for p in rec["phones"]] and 0 not in ids
    assert (d / "valid" / "features_logmel40.npz").exists()
    again = load_split(d, "valid")
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(items, again))
    mf = load_split(d, "valid", feature="mfcc")
    assert mf[0][0].shape == (items[0][0].shape[0], 13)


def test_feature_cache_written_by_two_runs_at_once(corpora, monkeypatch):
    """Two runs started together on a fresh corpus both compute the features; the second
    writes its cache while the first is still writing (what two `prune-sweep`s did): each
    moves its own file into place, and no temporary file is left."""
    d = corpora["a"]
    cache = d / "test" / "features_logmel40.npz"
    cache.unlink(missing_ok=True)
    real, calls = np.savez, []

    def savez(f, **arrays):
        calls.append(f)
        real(f, **arrays)
        if len(calls) == 1:  # the first run has written, not yet moved: the second runs now
            assert len(load_split(d, "test")) == 4

    monkeypatch.setattr(np, "savez", savez)
    items = load_split(d, "test")
    assert len(calls) == 2 and cache.exists() and len(items) == 4
    assert not list(cache.parent.glob("*.tmp*"))


def test_cli(tmp_path):
    from wispy.cli.main import main

    assert main(["corpus", str(tmp_path / "c"), "--train", "2", "--valid", "1", "--test", "1",
                 "--seed", "3", "--snr-db", "20", "-q"]) == 0
    meta = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert meta["counts"] == {"train": 2, "valid": 1, "test": 1} and meta["config"]["snr_db"] == 20.0
