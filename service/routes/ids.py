"""Article ids in URLs: one normalisation for every route, and ids that contain ``/``.

Ids come from files in subfolders (``world/2023/kirby``), so the document routes take the
rest of the path as the id (``/v1/documents/{doc_id:path}``); a client may send the ``/``
as it is or as ``%2F``. Every route passes the id through ``poshuk.documents.normalise_id``,
as the readers do, so ``PUT`` and ``GET`` of ``e%CC%81`` or ``rt-norm%E2%80%8B`` name the
article that was stored. "More like this" lives at ``/v1/similar/{doc_id:path}``; the
older ``/v1/documents/{doc_id}/similar`` still answers when the ``/similar`` is written as
a literal ``/`` (an encoded ``%2Fsimilar`` is always part of the id, which is how
``poshuk.Client`` sends ids) and ``{doc_id}/similar`` is not itself an article's id (an
article's id always wins, so it can never be shadowed).
"""

from __future__ import annotations

from poshuk.documents import normalise_id
from poshuk.errors import InputError
from service.write_schemas import MAX_ID_CHARS

SIMILAR_SUFFIX = "/similar"


def route_id(raw: str) -> str:
    """The article id a path parameter names: without the router's leading ``/``, normalised."""
    doc_id = normalise_id(raw.removeprefix("/"))
    if not doc_id:
        raise InputError("the article id in the path is empty once control and invisible characters are removed")
    if len(doc_id) > MAX_ID_CHARS:
        raise InputError(f"the article id in the path is {len(doc_id)} characters long; the limit is {MAX_ID_CHARS}")
    return doc_id


def legacy_similar_id(raw: str, raw_path: bytes) -> str | None:
    """For ``/v1/documents/{id}/similar`` (the older form): ``id``; None for any other path.

    ``raw_path`` is the request's path as sent: the suffix must be there with a literal ``/``.
    """
    path = raw.removeprefix("/")
    sent = raw_path.partition(b"?")[0]  # some servers (and test clients) leave the query string on it
    if not sent.endswith(SIMILAR_SUFFIX.encode()) or len(path) <= len(SIMILAR_SUFFIX):
        return None
    return route_id(path.removesuffix(SIMILAR_SUFFIX))
