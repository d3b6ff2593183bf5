"""Article -> passages: paragraph-aligned, token-bounded, with stable ids.

Paragraphs are the natural unit of a news article and what a reader recognises in a
hit, so passages follow them: credit lines («Фото: KCNA») are dropped, short
paragraphs are merged with a neighbour, and only paragraphs over the model's budget
are cut, at sentence boundaries first and word boundaries last. The budget counts
what the model actually reads: title context, text and its passage prompt.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from poshuk.documents import Article, Passage, passage_id
from poshuk.headings import untitled_context
from poshuk.settings import ChunkingSettings

PROMPT_TOKENS = 3
"""Tokens reserved for the model's passage prompt (e5's ``"passage: "``)."""

CREDIT_MAX_CHARS = 80
LINK_MAX_CHARS = 200  # «Читайте також: <headline>» lines carry a whole headline

_JOIN = "\n"  # merged paragraphs stay on their own lines within one passage

_CREDIT = re.compile(
    r"""^[(\[]?\s*(?:
        (?:фото|фотографія|фото\s+та\s+відео|відео|ілюстрація|зображення|джерело|автор\s+фото|
           photo|photos|picture|image|video|source|credit|photo\s+credit|illustration)
        (?:\s*:|\s*[–—-]\s)
      | photo\s+by\b | на\s+фото\s*: | фото\s+з\s+відкритих\s+джерел
      | фото\s+ілюстративне | ілюстративне\s+фото | illustrative\s+(?:photo|image)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_LINK = re.compile(
    r"^[(\[]?\s*(?:читайте\s+також|також\s+читайте|дивіться\s+також|read\s+more|read\s+also|see\s+also)\b",
    re.IGNORECASE,
)

# A sentence ends at . ! ? … (plus closing quotes/brackets) followed by space and a
# capital, digit, opening quote or a dash that opens direct speech.
_BOUNDARY = re.compile(r"""([.!?…]+["»”’)\]]*)(\s+)(?=[-–—]?\s*["«“„(\[]?[A-ZА-ЯІЇЄҐЁ0-9])""")
_ABBREVIATION_WORDS = """
    м р рр ст с смт вул просп пл ім напр див ген проф акад доц пп п т зв ч пров бул наб тел св о
    г ул им
    mr mrs ms dr prof sr jr st gen col lt sgt capt gov sen rep rev vs fig approx dept
    jan feb mar apr jun jul aug sep sept oct nov dec
"""  # words that end in a full stop without ending the sentence (м. Київ, 2023 р., Mr. Smith)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_NAME_INITIALS = frozenset({"дж", "ch", "th", "sh", "ph", "wm"})
_SENTENCE_FINAL = frozenset({"т.д", "т.п", "etc", "ін"})
_DOTTED = re.compile(r"(?:\w{1,3}\.)+\w{1,3}")
_WORD_EDGE = re.compile(r"^[(\[«\"“„']+")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (Ukrainian/English punctuation, quotes, abbreviations)."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group(1) == "." and _is_abbreviation(text[start : match.start(1)]):
            continue
        sentence = text[start : match.end(1)].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end(2)
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _is_abbreviation(before: str) -> bool:
    """Whether the word before a single full stop is an abbreviation or an initial."""
    words = before.split()
    if not words:
        return False
    word = _WORD_EDGE.sub("", words[-1])
    low = word.lower()
    if low in _SENTENCE_FINAL:
        return False
    if low in _ABBREVIATIONS or low in _NAME_INITIALS:
        return True
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # an initial: «В. Зеленський», "J. Kirby"
    return bool(_DOTTED.fullmatch(word))  # т.зв, U.S, e.g


def is_credit_line(paragraph: str) -> bool:
    """A short photo/source credit or «read also» link: not article content."""
    if len(paragraph) < CREDIT_MAX_CHARS and _CREDIT.match(paragraph):
        return True
    return len(paragraph) < LINK_MAX_CHARS and bool(_LINK.match(paragraph))


def chunk_article(article: Article, settings: ChunkingSettings, count_tokens: Callable[[str], int]) -> list[Passage]:
    """Cut ``article`` into passages of at most ``settings.max_tokens`` model tokens.

    Ids are ``passage_id(article.id, n)`` for n = 0, 1, ...; the same article and
    settings always give the same passages. A body-less article gives one passage
    holding its title; an article with neither gives none. A document with pages is cut
    page by page (no passage crosses a page; each knows its page), and every passage is
    embedded with the document's context (``document_context``).
    """
    title = " ".join(article.title.split())
    units: list[tuple[int | None, list[str]]] = [(p.number, _paragraphs(p.text)) for p in article.pages]
    units = units or [(None, _paragraphs(article.text))]
    units = [(number, paragraphs) for number, paragraphs in units if paragraphs]
    if not units:
        if not title:
            return []
        context = ""
        units = [(None, [title])]
    else:
        context = _title_context(document_context(article), settings, count_tokens) if settings.title_context else ""

    def embed(text: str) -> str:
        return f"{context}\n{text}" if context else text

    def fits(text: str) -> bool:
        return count_tokens(embed(text)) + PROMPT_TOKENS <= settings.max_tokens

    cut: list[tuple[int | None, str]] = []
    for number, paragraphs in units:
        pieces: list[str] = []
        for paragraph in paragraphs:
            pieces.extend([paragraph] if fits(paragraph) else _split(paragraph, fits))
        cut.extend((number, text) for text in _merge_short(pieces, settings.min_chars, fits))
    return [
        Passage(
            id=passage_id(article.id, n), doc_id=article.id, ordinal=n, text=text, embed_text=embed(text), page=number
        )
        for n, (number, text) in enumerate(cut)
    ]


def document_context(article: Article) -> str:
    """What every passage is embedded with: the title; a document with pages but no title gets
    its first heading instead (``poshuk.headings``), so a page on its own still says which
    document it belongs to."""
    title = " ".join(article.title.split())
    if title or not article.pages:
        return title
    return untitled_context([page.text for page in article.pages])


def _paragraphs(text: str) -> list[str]:
    """Every line is a paragraph, as the readers make them; hard-wrapped lines merge back when packed."""
    paragraphs = [" ".join(p.split()) for p in text.splitlines()]
    return [p for p in paragraphs if p and not is_credit_line(p)]


def _title_context(title: str, settings: ChunkingSettings, count_tokens: Callable[[str], int]) -> str:
    """The title, cut to half the budget so a huge title cannot crowd out the text."""
    limit = settings.max_tokens // 2
    if count_tokens(title) <= limit:
        return title
    head = _greedy(title.split(), " ", lambda t: count_tokens(t) <= limit)[0]
    return head if count_tokens(head) <= limit else ""


def _split(paragraph: str, fits: Callable[[str], bool]) -> list[str]:
    """Sentences packed greedily; a sentence over the budget is cut at words (or characters)."""
    units: list[str] = []
    for sentence in split_sentences(paragraph):
        if fits(sentence):
            units.append(sentence)
            continue
        for word in sentence.split():
            units.extend([word] if fits(word) else _cut_word(word, fits))
    return _pack(units, " ", fits)


def _pack(units: list[str], sep: str, fits: Callable[[str], bool]) -> list[str]:
    """Join consecutive units into as few fitting chunks as greedy packing needs, evenly sized.

    Plain greedy packing leaves a stub («Джона Кірбі.») at the end of a cut paragraph;
    a second pass aiming at an equal share of the characters per chunk avoids it.
    """
    greedy = _greedy(units, sep, fits)
    if len(greedy) < 2:
        return greedy
    target = len(sep.join(units)) / len(greedy)
    balanced = _greedy(units, sep, fits, target=target)
    return balanced if len(balanced) <= len(greedy) else greedy


def _greedy(units: list[str], sep: str, fits: Callable[[str], bool], target: float | None = None) -> list[str]:
    """Each chunk takes as many units as fit (and, with ``target``, stops once that long).

    The end of each chunk is found by galloping then bisecting, so a 100,000-word
    run-on text costs a few tokenizer calls per chunk rather than one per word.
    """
    out: list[str] = []
    start = 0
    while start < len(units):

        def ok(end: int, start: int = start) -> bool:
            if end == start + 1:
                return True  # a single unit always makes a chunk; callers ensure it fits
            if target is not None and len(sep.join(units[start : end - 1])) >= target:
                return False
            return fits(sep.join(units[start:end]))

        good, step = start + 1, 1
        while good + step <= len(units) and ok(good + step):
            good += step
            step *= 2
        bad = min(good + step, len(units) + 1)
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if ok(mid) else (good, mid)
        out.append(sep.join(units[start:good]))
        start = good
    return out


def _cut_word(word: str, fits: Callable[[str], bool]) -> list[str]:
    """Slices of a single over-long token (a URL, a hash), each the longest that fits."""
    out: list[str] = []
    while word:
        lo, hi = 1, len(word)
        while lo < hi:  # longest prefix that fits; at least one character
            mid = (lo + hi + 1) // 2
            if fits(word[:mid]):
                lo = mid
            else:
                hi = mid - 1
        out.append(word[:lo])
        word = word[lo:]
    return out


def _merge_short(pieces: list[str], min_chars: int, fits: Callable[[str], bool]) -> list[str]:
    """Merge pieces shorter than ``min_chars`` into the next one (the last into the previous)."""
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) < min_chars and fits(merged[-1] + _JOIN + piece):
            merged[-1] += _JOIN + piece
        else:
            merged.append(piece)
    if len(merged) >= 2 and len(merged[-1]) < min_chars and fits(merged[-2] + _JOIN + merged[-1]):
        merged[-2:] = [merged[-2] + _JOIN + merged[-1]]
    return merged
