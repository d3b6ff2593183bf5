"""``Client`` and ``AsyncClient``: the Poshuk HTTP API from another newsroom tool.

Both speak the stable ``/v1`` API over httpx and answer with the library's own structs
(``SearchResult``, ``Article``), so code can move between an in-process ``Searcher`` and
a remote service. A problem+json answer raises the matching ``PoshukError``:

======  ==============================================================
status  raises
======  ==============================================================
400     ``InvalidQueryError`` (invalid query) or ``InputError``
404     ``NotFoundError``
401/403 ``AuthError``
429/503 ``ServiceUnavailableError``
other   ``InputError`` for 4xx, ``PoshukError`` for the rest
======  ==============================================================

Each carries the answer's ``status`` and ``detail``. Example::

    with poshuk.Client("http://127.0.0.1:8000") as client:
        result = client.search("переговори про зброю", k=5)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import msgspec

from poshuk.documents import Article
from poshuk.errors import (
    AuthError,
    InputError,
    InvalidQueryError,
    NotFoundError,
    PoshukError,
    ServiceUnavailableError,
)
from poshuk.filters import Filters
from poshuk.wire import (
    Alert,
    AlertMatches,
    DocumentResponse,
    Facet,
    Mode,
    Problem,
    SearchResult,
    Sort,
    WriteResult,
)

__all__ = ["AsyncClient", "Client", "WriteResult"]

DEFAULT_TIMEOUT = 30.0


_RESULT = msgspec.json.Decoder(SearchResult)
_DOCUMENT = msgspec.json.Decoder(DocumentResponse)
_WRITTEN = msgspec.json.Decoder(WriteResult)
_ALERT = msgspec.json.Decoder(Alert)
_ALERTS = msgspec.json.Decoder(list[Alert])
_MATCHES = msgspec.json.Decoder(AlertMatches)
_PROBLEM = msgspec.json.Decoder(Problem)
_ENCODER = msgspec.json.Encoder()


def error_for(response: httpx.Response) -> PoshukError:
    """The ``PoshukError`` a non-2xx answer stands for, with its ``status`` and ``detail``."""
    status = response.status_code
    problem = _problem_of(response)
    detail = problem.detail or problem.title or response.reason_phrase
    error: PoshukError
    if status == 400 and problem.type.endswith("/invalid-query"):
        error = InvalidQueryError(detail)
    elif status == 404:
        error = NotFoundError(detail)
    elif status in (401, 403):
        error = AuthError(detail, hint="pass a valid api_key")
    elif status in (429, 503):
        retry = response.headers.get("retry-after")
        error = ServiceUnavailableError(detail, hint=f"retry after {retry} s" if retry else "retry later")
    elif 400 <= status < 500:
        error = InputError(detail)
    else:
        error = PoshukError(f"HTTP {status}: {detail}")
    error.status = status
    error.detail = detail
    return error


def _problem_of(response: httpx.Response) -> Problem:
    """The answer's problem document; a partial one (a proxy's: RFC 9457 makes every member optional)
    or none at all (plain text) is read as far as it goes."""
    try:
        return _PROBLEM.decode(response.content)
    except msgspec.DecodeError:
        pass
    try:
        found = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        found = None
    fields = found if isinstance(found, dict) else {}

    def text(name: str, default: str) -> str:
        value = fields.get(name)
        return value if isinstance(value, str) else default

    body = "" if fields else response.text.strip()
    return Problem(
        type=text("type", "about:blank"),
        title=text("title", ""),
        status=response.status_code,
        detail=text("detail", body or response.reason_phrase),
    )


def _search_body(
    query: str,
    k: int,
    mode: Mode,
    filters: Filters | None,
    collapse: bool,
    offset: int,
    options: dict[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query, "k": k, "mode": mode, "collapse": collapse, "offset": offset, **options}
    if filters is not None:
        body["filters"] = msgspec.to_builtins(filters)
    return body


def _options(
    dedupe: bool,
    highlight: bool,
    semantic_highlights: bool,
    sort: Sort,
    recency_half_life_days: float | None,
    facets: Sequence[Facet],
) -> dict[str, Any]:
    options: dict[str, Any] = {"dedupe": dedupe, "highlight": highlight, "semantic_highlights": semantic_highlights}
    options["sort"] = sort
    if recency_half_life_days is not None:  # absent unless asked: a server from before issue 16 still answers
        options["recency_half_life_days"] = recency_half_life_days
    if facets:
        options["facets"] = list(facets)
    return options


def _alert_body(
    query: str,
    mode: Mode,
    filters: Filters | None,
    threshold: float | None,
    webhook: str | None,
    top_k: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query, "mode": mode}
    if top_k is not None:
        body["top_k"] = top_k
    if filters is not None:
        body["filters"] = msgspec.to_builtins(filters)
    if threshold is not None:
        body["threshold"] = threshold
    if webhook is not None:
        body["webhook"] = webhook
    return body


def _alert_path(alert_id: str, tail: str = "") -> str:
    return f"/v1/alerts/{quote(alert_id, safe='')}{tail}"


def _doc_path(doc_id: str) -> str:
    """The article's URL; the id fully quoted (``/`` too), so any id round-trips."""
    return f"/v1/documents/{quote(doc_id, safe='')}"


def _similar_path(doc_id: str) -> str:
    """The article's similar list, on the route that cannot be mistaken for an id ending in ``/similar``."""
    return f"/v1/similar/{quote(doc_id, safe='')}"


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _checked(response: httpx.Response) -> bytes:
    if response.is_success:
        return response.content
    raise error_for(response)


def _content(articles: Iterable[Article]) -> bytes:
    return _ENCODER.encode(list(articles))


class Client:
    """A synchronous client for one Poshuk service; use it as a context manager or call ``close()``.

    ``transport`` replaces the network (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        collapse: bool = False,
        offset: int = 0,
        dedupe: bool = False,
        highlight: bool = True,
        semantic_highlights: bool = False,
        sort: Sort = "relevance",
        recency_half_life_days: float | None = None,
        facets: Sequence[Facet] = (),
    ) -> SearchResult:
        """The ``k`` best passages for ``query`` (as ``Searcher.search``)."""
        options = _options(dedupe, highlight, semantic_highlights, sort, recency_half_life_days, facets)
        body = _search_body(query, k, mode, filters, collapse, offset, options)
        return _RESULT.decode(_checked(self._http.post("/v1/search", json=body)))

    def document(self, doc_id: str) -> Article:
        """The stored article; ``NotFoundError`` if the index holds none with this id."""
        return _DOCUMENT.decode(_checked(self._http.get(_doc_path(doc_id)))).article()

    def similar(self, doc_id: str, k: int = 10) -> SearchResult:
        """Articles closest in meaning to ``doc_id``, best first."""
        return _RESULT.decode(_checked(self._http.get(_similar_path(doc_id), params={"k": k})))

    def upsert(self, article: Article) -> WriteResult:
        """Add or replace one article (needs a write key)."""
        content = _ENCODER.encode(article)
        response = self._http.put(_doc_path(article.id), content=content, headers={"Content-Type": "application/json"})
        return _WRITTEN.decode(_checked(response))

    def upsert_many(self, articles: Sequence[Article]) -> WriteResult:
        """Add or replace a batch of articles in one durable transaction (needs a write key)."""
        response = self._http.post(
            "/v1/documents", content=_content(articles), headers={"Content-Type": "application/json"}
        )
        return _WRITTEN.decode(_checked(response))

    def delete(self, doc_id: str) -> WriteResult:
        """Delete one article (needs a write key); ``NotFoundError`` if absent."""
        return _WRITTEN.decode(_checked(self._http.delete(_doc_path(doc_id))))

    def ready(self) -> bool:
        """Whether the service can answer searches now."""
        return self._http.get("/readyz").status_code == 200

    def create_alert(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        threshold: float | None = None,
        webhook: str | None = None,
        top_k: int | None = None,
    ) -> Alert:
        """Save a search as an alert (needs a key): articles written from now on that match it become its
        matches (``Alerts.create`` says how ``threshold`` and ``top_k`` decide)."""
        body = _alert_body(query, mode, filters, threshold, webhook, top_k)
        return _ALERT.decode(_checked(self._http.post("/v1/alerts", json=body)))

    def alerts(self) -> list[Alert]:
        """The alerts saved with this client's key, newest first."""
        return _ALERTS.decode(_checked(self._http.get("/v1/alerts")))

    def alert(self, alert_id: str) -> Alert:
        """One of this key's alerts; ``NotFoundError`` otherwise."""
        return _ALERT.decode(_checked(self._http.get(_alert_path(alert_id))))

    def delete_alert(self, alert_id: str) -> None:
        """Delete one of this key's alerts with its matches and undelivered notifications."""
        _checked(self._http.delete(_alert_path(alert_id)))

    def alert_matches(self, alert_id: str, *, limit: int = 20, newest: bool = False) -> AlertMatches:
        """The alert's matches, best first (``newest``: latest first)."""
        params: dict[str, Any] = {"limit": limit, "newest": newest}
        return _MATCHES.decode(_checked(self._http.get(_alert_path(alert_id, "/matches"), params=params)))


class AsyncClient:
    """The asynchronous twin of ``Client``: the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def search(
        self,
        query: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        collapse: bool = False,
        offset: int = 0,
        dedupe: bool = False,
        highlight: bool = True,
        semantic_highlights: bool = False,
        sort: Sort = "relevance",
        recency_half_life_days: float | None = None,
        facets: Sequence[Facet] = (),
    ) -> SearchResult:
        """The ``k`` best passages for ``query`` (as ``Searcher.search``)."""
        options = _options(dedupe, highlight, semantic_highlights, sort, recency_half_life_days, facets)
        body = _search_body(query, k, mode, filters, collapse, offset, options)
        return _RESULT.decode(_checked(await self._http.post("/v1/search", json=body)))

    async def document(self, doc_id: str) -> Article:
        """The stored article; ``NotFoundError`` if the index holds none with this id."""
        return _DOCUMENT.decode(_checked(await self._http.get(_doc_path(doc_id)))).article()

    async def similar(self, doc_id: str, k: int = 10) -> SearchResult:
        """Articles closest in meaning to ``doc_id``, best first."""
        response = await self._http.get(_similar_path(doc_id), params={"k": k})
        return _RESULT.decode(_checked(response))

    async def upsert(self, article: Article) -> WriteResult:
        """Add or replace one article (needs a write key)."""
        content = _ENCODER.encode(article)
        response = await self._http.put(
            _doc_path(article.id), content=content, headers={"Content-Type": "application/json"}
        )
        return _WRITTEN.decode(_checked(response))

    async def upsert_many(self, articles: Sequence[Article]) -> WriteResult:
        """Add or replace a batch of articles in one durable transaction (needs a write key)."""
        response = await self._http.post(
            "/v1/documents", content=_content(articles), headers={"Content-Type": "application/json"}
        )
        return _WRITTEN.decode(_checked(response))

    async def delete(self, doc_id: str) -> WriteResult:
        """Delete one article (needs a write key); ``NotFoundError`` if absent."""
        return _WRITTEN.decode(_checked(await self._http.delete(_doc_path(doc_id))))

    async def ready(self) -> bool:
        """Whether the service can answer searches now."""
        return (await self._http.get("/readyz")).status_code == 200

    async def create_alert(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        threshold: float | None = None,
        webhook: str | None = None,
        top_k: int | None = None,
    ) -> Alert:
        """Save a search as an alert (needs a key): articles written from now on that match it become its
        matches (``Alerts.create`` says how ``threshold`` and ``top_k`` decide)."""
        body = _alert_body(query, mode, filters, threshold, webhook, top_k)
        return _ALERT.decode(_checked(await self._http.post("/v1/alerts", json=body)))

    async def alerts(self) -> list[Alert]:
        """The alerts saved with this client's key, newest first."""
        return _ALERTS.decode(_checked(await self._http.get("/v1/alerts")))

    async def alert(self, alert_id: str) -> Alert:
        """One of this key's alerts; ``NotFoundError`` otherwise."""
        return _ALERT.decode(_checked(await self._http.get(_alert_path(alert_id))))

    async def delete_alert(self, alert_id: str) -> None:
        """Delete one of this key's alerts with its matches and undelivered notifications."""
        _checked(await self._http.delete(_alert_path(alert_id)))

    async def alert_matches(self, alert_id: str, *, limit: int = 20, newest: bool = False) -> AlertMatches:
        """The alert's matches, best first (``newest``: latest first)."""
        params: dict[str, Any] = {"limit": limit, "newest": newest}
        return _MATCHES.decode(_checked(await self._http.get(_alert_path(alert_id, "/matches"), params=params)))
