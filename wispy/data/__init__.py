"""Synthetic speech corpora for accuracy measurements (espeak-ng + sox; no download needed)."""
from wispy.data.corpus import PHONES, generate_corpus, ipa_to_phones, load_split, mix_at_snr

__all__ = ["PHONES", "generate_corpus", "ipa_to_phones", "load_split", "mix_at_snr"]
