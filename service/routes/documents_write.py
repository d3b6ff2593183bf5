"""Writes to the live index: ``PUT``/``DELETE /v1/documents/{doc_id}``, ``POST /v1/documents``
(a batch), and ``POST /v1/admin/reload``. All need an API key (``service.auth``).

A write reads the body, then off the event loop runs the same path as ``poshuk index``
(reader checks, language, chunking, encoding: ``poshuk.ingest.prepare``) and one
durable SQLite transaction (``Index.write``). The answer is sent only after that
transaction committed with ``synchronous=FULL``: a 2xx survives ``kill -9`` the next
instant, and searches in this process already see it. Upserts replace every passage of
the article. A write that reaches a version a rebuild has just retired is redone on
the new version, so it is not lost. On a sharded archive the same routes go through its
one writer (``poshuk.shards.writer``): durable on the answer too, but a batch spanning
shards can be seen half applied for a moment. A read-only service (``service.read_only``) answers
the three document writes 405 (``service.read_only``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, delete, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, OpenAPIType, Operation, Reference, RequestBody, Schema
from litestar.params import Body, Parameter

from poshuk.documents import normalise_id
from poshuk.errors import IndexBusyError, IndexRetiredError, InputError, NotFoundError, PoshukError
from poshuk.index import Upsert, WriteOutcome
from poshuk.ingest import prepare
from poshuk.readers import article_from_record
from poshuk.search import Searcher
from poshuk.settings import ServiceSettings
from poshuk.wire import WriteResult
from service.auth import KEYED, WRITE
from service.errors import ServiceProblem, problem_responses
from service.fair_gate import FairGate
from service.lifecycle import Lifecycle
from service.limits import client_of
from service.read_only import WRITES_INDEX
from service.routes.documents import DocumentsController
from service.routes.ids import route_id
from service.write_schemas import ArticleIn, ReloadResponse

NDJSON = "application/x-ndjson"
_WRITE_OPT: dict[str, Any] = {"access": WRITE}
_INDEX_WRITE_OPT: dict[str, Any] = {**_WRITE_OPT, WRITES_INDEX: True}  # refused by a read-only service
WRITE_ATTEMPTS = 3

_ID_DOC = "Article id, e.g. `uk-001` or `world/2023/kirby` (`/` as is or as `%2F`)."
_ARTICLE_EXAMPLE = {
    "title": "Кірбі: Росія та КНДР активно просувають переговори про зброю",
    "text": "Переговори про продаж зброї між Росією та Північною Кореєю активно просуваються.\n"
    "Про це заявив координатор Ради національної безпеки США Джон Кірбі.",
    "url": "https://example.com/news/uk-001",
    "source": "Example News",
    "published_at": "2023-08-31T09:15:00+03:00",
    "lang": "uk",
    "section": "світ",
    "tags": ["КНДР", "Росія"],
}


def _articles(items: list[ArticleIn], path_id: str | None, detector: Any) -> list[Any]:
    articles = []
    for n, item in enumerate(items):
        if path_id is not None and item.id is not None and normalise_id(item.id) != path_id:
            raise ServiceProblem(
                409, "id-mismatch", "Id mismatch", f"body id {item.id!r} differs from the path's {path_id!r}"
            )
        doc_id = path_id if path_id is not None else item.id
        if doc_id is None or not normalise_id(doc_id):
            raise InputError(f"article {n}: missing id (every article of a batch needs one)")
        try:
            articles.append(article_from_record(item.record(doc_id), detector))
        except ValueError as exc:
            where = f"article {doc_id!r}" if path_id is not None else f"article {n} ({doc_id!r})"
            raise InputError(f"{where}: {exc}") from None
    latest = {a.id: a for a in articles}  # a later article with the same id replaces the earlier one
    return list(latest.values())


def _apply(lifecycle: Lifecycle, searcher: Searcher, upserts: list[Upsert], deletes: list[str]) -> WriteOutcome:
    """One durable write; redone on the new version if a rebuild retired this one meanwhile."""
    for _attempt in range(WRITE_ATTEMPTS):
        try:
            result = searcher.writer.write(upserts, deletes)  # one index, or a sharded archive's writer
            lifecycle.written(len(upserts), len(result.deleted))
            return result
        except IndexRetiredError:
            try:
                lifecycle.reload()
            except PoshukError as exc:  # e.g. the new version needs another model: this service cannot write it
                raise IndexRetiredError(
                    f"the index was rebuilt and this service cannot switch to it: {exc.one_line()}",
                    hint="restart the service",
                ) from None
            searcher = lifecycle.state.require_searcher()
    raise IndexBusyError("the index kept changing versions during this write", hint="retry in a moment")


def _upsert(
    lifecycle: Lifecycle, searcher: Searcher, items: list[ArticleIn], path_id: str | None
) -> tuple[WriteOutcome, WriteResult]:
    """Encode (no lock held), then write; the write says which ids it replaced."""
    articles = _articles(items, path_id, lifecycle.detector)
    target = searcher.writer
    upserts = prepare(articles, searcher.encoder, target.manifest.chunking, lifecycle.detector, target.analyzer)
    result = _apply(lifecycle, searcher, upserts, [])
    response = WriteResult(
        ids=[u.article.id for u in upserts], passages=sum(len(u.passages) for u in upserts), seq=result.seq
    )
    return result, response


def _decode_batch(body: bytes, content_type: str, limit: int) -> list[ArticleIn]:
    """A JSON array or NDJSON lines of articles; at most ``limit``."""
    try:
        if content_type == NDJSON:
            lines = [(n, line) for n, line in enumerate(body.split(b"\n"), start=1) if line.strip()]
            _check_count(len(lines), limit)
            return [_decode_line(n, line) for n, line in lines]
        raw = msgspec.json.decode(body, type=list[msgspec.Raw])
    except msgspec.DecodeError as exc:
        raise InputError(f"request body is not a JSON array of articles: {exc}") from None
    _check_count(len(raw), limit)
    out = []
    for n, item in enumerate(raw):
        try:
            out.append(msgspec.json.decode(item, type=ArticleIn))
        except msgspec.DecodeError as exc:
            raise InputError(f"article {n}: {exc}") from None
    return out


def _decode_line(n: int, line: bytes) -> ArticleIn:
    try:
        return msgspec.json.decode(line, type=ArticleIn)
    except msgspec.DecodeError as exc:
        raise InputError(f"line {n}: {exc}") from None


def _check_count(count: int, limit: int) -> None:
    if count == 0:
        raise InputError("the batch holds no articles")
    if count > limit:
        raise ServiceProblem(
            413,
            "batch-too-large",
            "Batch too large",
            f"the batch holds {count} articles; the limit is {limit} (service.max_batch_documents)",
        )


def _batch_operation(limit: int) -> type[Operation]:
    """OpenAPI for the batch route, whose handler reads the body itself (JSON array or NDJSON)."""

    @dataclass
    class BatchOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True,
                description=f"1..{limit} articles as a JSON array, or as NDJSON (`Content-Type: {NDJSON}`), "
                "one article per line. Every article needs an `id`.",
                content={
                    "application/json": OpenAPIMediaType(
                        schema=Schema(
                            type=OpenAPIType.ARRAY,
                            # an ArticleIn whose id, optional in a PUT, is required here
                            items=Schema(
                                all_of=[Reference(ref="#/components/schemas/ArticleIn"), Schema(required=["id"])]
                            ),
                            min_items=1,
                            max_items=limit,
                        ),
                    )
                },
            )

    return BatchOperation


def write_controllers(limits: ServiceSettings) -> list[type[Controller]]:
    """The write and admin routes, with the write body limit (``service.max_write_body_bytes``)."""
    batch_limit = limits.max_batch_documents

    class DocumentWriteController(DocumentsController):
        """``DocumentsController``'s reads plus the writes: Litestar cannot split a path over two controllers."""

        request_max_body_size = limits.max_write_body_bytes

        @put(
            "/{doc_id:path}",
            opt=_INDEX_WRITE_OPT,
            security=KEYED,
            summary="Add or replace an article",
            description="Index one article under `doc_id`, replacing every passage of an earlier one. "
            "201 when it is new, 200 when it replaced one; either way the write is durable and searchable "
            "when the answer arrives.",
            responses={
                201: _written("The article was new."),
                **problem_responses(400, 401, 403, 405, 409, 413, 429, 503, 507),
            },
        )
        async def put_document(
            self,
            doc_id: Annotated[str, Parameter(description=_ID_DOC)],
            data: Annotated[ArticleIn, Body(description="The article.", examples=_examples())],
            request: Request[Any, Any, Any],
            searcher: NamedDependency[Searcher],
            lifecycle: NamedDependency[Lifecycle],
            gate: NamedDependency[FairGate],
        ) -> Response[WriteResult]:
            wanted = route_id(doc_id)  # the id as stored: 201/200 must compare like with like
            client = client_of(request.scope)
            gate.refuse_over_share(client)
            async with gate.charged(client):
                result, written = await anyio.to_thread.run_sync(lambda: _upsert(lifecycle, searcher, [data], wanted))
            return Response(written, status_code=200 if result.replaced else 201)

        @post(
            "/",
            status_code=200,
            opt=_INDEX_WRITE_OPT,
            security=KEYED,
            summary="Add or replace a batch of articles",
            description="Index up to `service.max_batch_documents` articles in one durable transaction: all "
            f"or none. The body is a JSON array, or NDJSON with `Content-Type: {NDJSON}`.",
            operation_class=_batch_operation(batch_limit),
            responses=problem_responses(400, 401, 403, 405, 413, 429, 503, 507),
        )
        async def post_documents(
            self,
            request: Request[Any, Any, Any],
            searcher: NamedDependency[Searcher],
            lifecycle: NamedDependency[Lifecycle],
            gate: NamedDependency[FairGate],
        ) -> WriteResult:
            client = client_of(request.scope)
            gate.refuse_over_share(client)
            body = await request.body()
            items = _decode_batch(body, request.content_type[0], batch_limit)
            async with gate.charged(client):
                _, written = await anyio.to_thread.run_sync(lambda: _upsert(lifecycle, searcher, items, None))
            return written

        @delete(
            "/{doc_id:path}",
            opt=_INDEX_WRITE_OPT,
            security=KEYED,
            status_code=200,
            summary="Delete an article",
            description="Remove the article, its passages, vectors and lexical postings, durably; 404 if absent.",
            responses=problem_responses(401, 403, 404, 405, 429, 503, 507),
        )
        async def delete_document(
            self,
            doc_id: Annotated[str, Parameter(description=_ID_DOC)],
            searcher: NamedDependency[Searcher],
            lifecycle: NamedDependency[Lifecycle],
        ) -> WriteResult:
            wanted = route_id(doc_id)

            def work() -> WriteResult:
                result = _apply(lifecycle, searcher, [], [wanted])
                if not result.deleted:
                    raise NotFoundError(f"document {wanted!r} is not in the index")
                return WriteResult(ids=[wanted], passages=0, seq=result.seq)

            return await anyio.to_thread.run_sync(work)

    class AdminController(Controller):
        path = "/v1/admin"
        tags = ("admin",)
        opt = _WRITE_OPT
        security = KEYED
        request_max_body_size = limits.max_write_body_bytes

        @post(
            "/reload",
            status_code=200,
            sync_to_thread=True,
            summary="Switch to the live index version",
            description="Serve the version `CURRENT` names now (the service also notices within a second). "
            "Requests in flight finish on the old version.",
            responses=problem_responses(401, 403, 429, 503),
        )
        def reload(self, lifecycle: NamedDependency[Lifecycle]) -> ReloadResponse:
            try:
                done = lifecycle.reload()
            except PoshukError as exc:
                raise ServiceProblem(
                    503,
                    "reload-failed",
                    "Reload failed",
                    f"still serving the previous version: {exc.one_line()}",
                ) from None
            return ReloadResponse(version=done.version, previous=done.previous, changed=done.changed)

    return [DocumentWriteController, AdminController]


def _written(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=WriteResult, description=description, generate_examples=False)


def _examples() -> list[Example]:
    return [Example(summary="A Ukrainian article", value=_ARTICLE_EXAMPLE)]
