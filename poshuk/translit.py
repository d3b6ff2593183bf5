"""Latin-script names -> their likely Ukrainian spellings, for English queries.

An English query names people and places in Latin script (Kirby, Shoigu, Pyongyang)
while a Ukrainian article spells them in Cyrillic (Кірбі, Шойгу, Пхеньян). Spelling
rules are ambiguous, so this yields a few candidates; the search matches them as
prefixes, which also absorbs Ukrainian inflection (Шойгу, Кірбі, Пхеньяна).
"""

from __future__ import annotations

import itertools

# Longest patterns first; each maps to one or more Ukrainian renderings.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shch", ("щ",)),
    ("sch", ("ш",)),
    ("tch", ("ч",)),
    ("zh", ("ж",)),
    ("kh", ("х",)),
    ("ch", ("ч",)),
    ("sh", ("ш",)),
    ("ts", ("ц",)),
    ("tz", ("ц",)),
    ("th", ("т",)),
    ("ph", ("ф",)),
    ("ck", ("к",)),
    ("qu", ("кв",)),
    ("oo", ("у",)),
    ("ee", ("і",)),
    ("ea", ("і",)),
    ("ya", ("я",)),
    ("yu", ("ю",)),
    ("ye", ("є", "е")),
    ("yi", ("ї",)),
    ("yo", ("йо",)),
    ("ai", ("ай",)),
    ("ay", ("ей", "ай")),
    ("ei", ("ей",)),
    ("ey", ("ей",)),
    ("oi", ("ой",)),
    ("oy", ("ой",)),
    ("ia", ("ія",)),
    ("iu", ("ію",)),
    ("ie", ("іє",)),
    ("a", ("а",)),
    ("b", ("б",)),
    ("c", ("к",)),
    ("d", ("д",)),
    ("e", ("е",)),
    ("f", ("ф",)),
    ("g", ("г", "ґ")),
    ("h", ("х", "г")),
    ("i", ("і", "и")),
    ("j", ("дж",)),
    ("k", ("к",)),
    ("l", ("л",)),
    ("m", ("м",)),
    ("n", ("н",)),
    ("o", ("о",)),
    ("p", ("п",)),
    ("q", ("к",)),
    ("r", ("р",)),
    ("s", ("с",)),
    ("t", ("т",)),
    ("u", ("у",)),
    ("v", ("в",)),
    ("w", ("в",)),
    ("x", ("кс",)),
    ("y", ("и", "і", "й")),
    ("z", ("з",)),
)
_VOWELS = set("aeiouy")


def transliterate(word: str, *, limit: int = 4) -> list[str]:
    """Up to ``limit`` likely Ukrainian spellings of a Latin-script word, best first."""
    word = word.casefold()
    if not word or not word.isascii() or not word.isalpha():
        return []
    options: list[tuple[str, ...]] = []
    i = 0
    while i < len(word):
        for pattern, outputs in _RULES:
            if word.startswith(pattern, i):
                if pattern == "c" and word[i + 1 : i + 2] in ("e", "i", "y"):
                    outputs = ("с",)
                elif pattern == "y" and i == len(word) - 1:
                    outputs = ("і", "ий")
                elif pattern == "y" and word[i + 1 : i + 2] in _VOWELS:
                    outputs = ("й",)
                options.append(outputs)
                i += len(pattern)
                break
    candidates: list[str] = []
    for combo in itertools.product(*options):
        candidate = "".join(combo)
        if candidate not in candidates:
            candidates.append(candidate)
        if len(candidates) >= limit:
            break
    return candidates
