"""``/healthz`` (the process is up) and ``/readyz`` (the index is loaded)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from poshuk.search import Searcher
from service.errors import problem_responses
from service.schemas import HealthResponse, ReadyResponse


class HealthController(Controller):
    tags = ("health",)

    @get(
        "/healthz",
        summary="Liveness",
        description="Always 200 while the process serves HTTP, even before the index is loaded.",
    )
    async def healthz(self) -> HealthResponse:
        return HealthResponse()

    @get(
        "/readyz",
        summary="Readiness",
        description="200 with the index's counts once searches can be answered; 503 problem+json "
        "while the index is loading or if it failed to load (the detail gives the reason).",
        responses=problem_responses(503),
    )
    async def readyz(self, searcher: NamedDependency[Searcher]) -> ReadyResponse:
        return ReadyResponse.from_stats(
            searcher.stats(), read_only=searcher.read_only, lexical_in_memory=searcher.lexical_in_memory
        )
