"""Character vocabulary: every distinct code point of a corpus, sorted, mapped to ids 0..V-1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charnn.errors import CharnnError

REPLACEMENT = "\ufffd"  # stands for every character rarer than data.min_char_count


def _code_points(text: str) -> np.ndarray:
    """The Unicode code points of `text` as a uint32 array (no Python loop)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


@dataclass(frozen=True)
class Vocab:
    """Sorted characters; id i is `chars[i]`. Sorting makes ids identical in every process."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.chars:
            raise CharnnError("vocabulary size is 0: the text is empty; give a non-empty text")
        if list(self.chars) != sorted(set(self.chars)):
            raise CharnnError("vocabulary characters must be distinct and sorted")
        # Sorted code points let encode() map a whole text with one searchsorted.
        object.__setattr__(self, "_codes", _code_points("".join(self.chars)))

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        codes = np.unique(_code_points(text))
        return cls(tuple(chr(c) for c in codes))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text` as int32; a character outside the vocabulary is an error naming it."""
        codes = _code_points(text)
        ids = np.searchsorted(self._codes, codes)
        ids_clipped = np.minimum(ids, self.size - 1)
        unknown = np.flatnonzero(self._codes[ids_clipped] != codes)
        if unknown.size:
            pos = int(unknown[0])
            raise CharnnError(
                f"character {text[pos]!r} at position {pos} is not in the vocabulary "
                f"({unknown.size} unknown in all); use only characters the model was trained on"
            )
        return ids.astype(np.int32)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def map_rare(self, text: str) -> tuple[str, int]:
        """Replace characters outside the vocabulary by REPLACEMENT, as training did for rare ones.

        Only for vocabularies that have REPLACEMENT (built with data.min_char_count);
        returns (text, how many characters were replaced).
        """
        unknown = self.unknown_chars(text) if REPLACEMENT in self.chars else []
        if not unknown:
            return text, 0
        table = {ord(c): REPLACEMENT for c in unknown}
        mapped = text.translate(table)
        return mapped, sum(text.count(c) for c in unknown)

    def describe(self, shown: int = 40) -> str:
        """'vocabulary of 4: "ehlo"' (long ones cut short), for messages."""
        text = "".join(self.chars)
        cut = repr(text[:shown]) + (f" and {len(text) - shown} more" if len(text) > shown else "")
        return f"vocabulary of {self.size}: {cut}"

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of `text` that the vocabulary lacks, sorted."""
        known = set(self.chars)
        return sorted(set(text) - known)


def one_hot(ids, vocab_size: int, dtype=np.float64) -> np.ndarray:
    """Explicit one-hot encoding, shape ids.shape + (V,); the model itself uses row lookups."""
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (vocab_size,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


def to_symbols(text: str, encoding: str) -> str:
    """A text as the model's symbols: itself in utf-8 mode; one symbol per UTF-8 byte in bytes mode."""
    return text if encoding == "utf-8" else text.encode("utf-8").decode("latin-1")


def from_symbols(symbols: str, encoding: str) -> bytes:
    """The bytes that model symbols stand for (what to write out)."""
    return symbols.encode("utf-8") if encoding == "utf-8" else symbols.encode("latin-1")
