"""Near-duplicate detection: the same story indexed twice (a copy, an edited copy, a translation).

Copies are found with MinHash over word 5-shingles of the normalised text: ``NUM_PERM``
hash permutations, split into ``BANDS`` bands of ``ROWS`` values for locality-sensitive
hashing. The index keeps each article's bands in SQLite, so finding candidates is an
indexed lookup, never a scan of the archive; a candidate is confirmed when the estimated
Jaccard similarity reaches ``COPY_THRESHOLD``. Translations are found by meaning: the
article's mean passage vector against its nearest passages, confirmed when the mean
vectors' cosine reaches ``TRANSLATION_THRESHOLD`` and the languages differ.

Thresholds were chosen with ``python -m benchmarks dedupe`` (see benchmarks/results/dedupe.md).
"""

from __future__ import annotations

import hashlib
import re
import zlib

import numpy as np
from numpy.typing import NDArray

from poshuk.documents import clean_text

NUM_PERM = 128
ROWS = 3
BANDS = NUM_PERM // ROWS  # 42 bands of 3 rows: P(candidate) ~0.99 at Jaccard 0.5, ~0.7 at 0.3
SHINGLE = 5
COPY_THRESHOLD = 0.5
TRANSLATION_THRESHOLD = 0.85
CANDIDATE_PASSAGES = 20

_PRIME = np.uint64((1 << 31) - 1)
_rng = np.random.default_rng(20240611)
_A = _rng.integers(1, (1 << 31) - 1, size=NUM_PERM, dtype=np.uint64)
_B = _rng.integers(0, (1 << 31) - 1, size=NUM_PERM, dtype=np.uint64)
_WORD = re.compile(r"\w+")
_EMPTY = np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)


def words(text: str) -> list[str]:
    """Lower-cased word tokens of NFC text (punctuation and spacing ignored)."""
    return _WORD.findall(clean_text(text).lower())


def shingles(text: str, size: int = SHINGLE) -> set[str]:
    tokens = words(text)
    if len(tokens) < size:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def signature(text: str) -> NDArray[np.uint64]:
    """The MinHash signature (``NUM_PERM`` values) of the text's word shingles."""
    found = shingles(text)
    if not found:
        return _EMPTY.copy()
    hashes = np.fromiter((zlib.crc32(s.encode()) for s in found), dtype=np.uint64, count=len(found))
    # (a*x + b) mod p stays below 2**63: a < 2**31, x < 2**32.
    permuted = (hashes[:, None] * _A[None, :] + _B[None, :]) % _PRIME
    out: NDArray[np.uint64] = permuted.min(axis=0)
    return out


def jaccard(a: NDArray[np.uint64], b: NDArray[np.uint64]) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.count_nonzero(a == b)) / len(a)


def band_hashes(sig: NDArray[np.uint64]) -> list[tuple[int, int]]:
    """(band number, signed 64-bit hash of the band's rows) for every LSH band."""
    out = []
    for band in range(BANDS):
        chunk = sig[band * ROWS : (band + 1) * ROWS].tobytes()
        digest = hashlib.blake2b(chunk, digest_size=8).digest()
        out.append((band, int.from_bytes(digest, "little", signed=True)))
    return out
