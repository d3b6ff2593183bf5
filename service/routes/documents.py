"""``/v1/documents/{doc_id}``: one indexed article with its passages."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from poshuk.search import Searcher
from poshuk.wire import DocumentResponse
from service.errors import problem_responses
from service.schemas import document_response


class DocumentsController(Controller):
    path = "/v1/documents"
    tags = ("documents",)

    @get(
        "/{doc_id:str}",
        sync_to_thread=True,
        summary="Get an article",
        description="The stored article (title, text, metadata) and its passages in order; "
        "404 if the index holds no article with this id.",
        responses=problem_responses(404, 503),
    )
    def get_document(
        self,
        doc_id: Annotated[str, Parameter(description="Article id as given at indexing, e.g. `uk-001`.")],
        searcher: NamedDependency[Searcher],
    ) -> DocumentResponse:
        return document_response(searcher.document(doc_id))
