"""``/v1/documents/{doc_id}``: one indexed article with its passages (ids may contain ``/``)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter

from poshuk.errors import NotFoundError
from poshuk.search import Searcher
from poshuk.settings import ServiceSettings
from poshuk.wire import DocumentResponse, SearchResult
from service.errors import problem_responses
from service.fair_gate import FairGate
from service.limits import client_of
from service.routes.ids import legacy_similar_id, route_id
from service.routes.similar import similar_response
from service.schemas import document_response

ID_DOC = "Article id as given at indexing, e.g. `uk-001` or `world/2023/kirby` (`/` as is or as `%2F`)."


class DocumentsController(Controller):
    path = "/v1/documents"
    tags = ("documents",)

    @get(
        "/{doc_id:path}",
        summary="Get an article",
        description="The stored article (title, text, metadata) and its passages in order; "
        "404 if the index holds no article with this id. (A path ending in `/similar` that is no article's id "
        "answers as `GET /v1/similar/{doc_id}`, the older form of that route.)",
        responses=problem_responses(400, 404, 429, 503),
    )
    async def get_document(
        self,
        doc_id: Annotated[str, Parameter(description=ID_DOC)],
        request: Request[Any, Any, Any],
        searcher: NamedDependency[Searcher],
        limits: NamedDependency[ServiceSettings],
        gate: NamedDependency[FairGate],
        # The older /v1/documents/{id}/similar form's parameters; documented on /v1/similar.
        k: Annotated[int, QueryParameter(include_in_schema=False)] = 10,
        lang: Annotated[list[str] | None, QueryParameter(include_in_schema=False)] = None,
        source: Annotated[list[str] | None, QueryParameter(include_in_schema=False)] = None,
        published_from: Annotated[str | None, QueryParameter(name="from", include_in_schema=False)] = None,
        published_to: Annotated[str | None, QueryParameter(name="to", include_in_schema=False)] = None,
    ) -> DocumentResponse | SearchResult:
        wanted = route_id(doc_id)
        try:
            return await anyio.to_thread.run_sync(lambda: document_response(searcher.document(wanted)))
        except NotFoundError:
            similar_of = legacy_similar_id(doc_id, request.scope.get("raw_path", b""))
            if similar_of is None:
                raise
        work = partial(
            similar_response,
            searcher,
            limits,
            similar_of,
            k=k,
            lang=lang,
            source=source,
            published_from=published_from,
            published_to=published_to,
        )
        return await gate.run(client_of(request.scope), work)  # a search: through the fair gate
