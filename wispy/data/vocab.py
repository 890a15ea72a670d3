"""Output units: the corpus' phones or letters (`CHARS`, Wav2letter's 29 classes)."""
from __future__ import annotations

# Letter targets (units="chars"): Wav2letter's 29 classes, blank first. The corpus' sentences
# are lowercase words of a-z separated by single spaces; the apostrophe is never used.
CHARS = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
_CHAR_INDEX = {c: i for i, c in enumerate(CHARS)}


def text_to_ids(text: str) -> list[int]:
    """A sentence -> letter ids (CHARS); lowercased, runs of whitespace become one space, other
    characters are dropped."""
    return [_CHAR_INDEX[c] for c in " ".join(text.lower().split()) if c in _CHAR_INDEX and c != CHARS[0]]


def ids_to_text(ids) -> str:
    return "".join(CHARS[i] for i in ids)


def vocabulary(corpus_dir, units: str = "phones") -> list[str]:
    """The output classes (blank first) for `units`: the corpus' phones or the letters."""
    from wispy.data.corpus import read_phones

    if units == "phones":
        return read_phones(corpus_dir)
    if units == "chars":
        return list(CHARS)
    raise ValueError(f"units must be 'phones' or 'chars', not {units!r}")
