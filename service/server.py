"""``serve()``: run the HTTP service under uvicorn (what ``poshuk serve`` calls)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import uvicorn

from poshuk.errors import ModelMismatchError
from poshuk.index import live_manifest
from poshuk.memory import trim_promptly
from poshuk.models import resolve_model
from poshuk.settings import Settings
from poshuk.shards import is_sharded, read_set
from poshuk.vectors import set_search_threads
from service.app import create_app
from service.connections import bounded_protocol, raise_open_files_limit
from service.logging_setup import log_config


def _read_only(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, service=msgspec.structs.replace(settings.service, read_only=True))


def check_model(index_dir: Path, settings: Settings) -> None:
    """``ModelMismatchError`` unless ``settings.model`` is the model the index (or its first shard) was built with."""
    folder = index_dir / read_set(index_dir).shards[0] if is_sharded(index_dir) else index_dir
    built_with = live_manifest(folder, read_only=settings.service.read_only).model
    model = resolve_model(settings.model, settings.home_path)
    if model.weights_sha256 != built_with.weights_sha256:
        raise ModelMismatchError(
            f"index {index_dir} was built with model {built_with.name!r}, not {settings.model!r}",
            hint=f"serve it with --model {built_with.name}, or rebuild the index",
        )


def serve_on_ray(index_dir: Path, settings: Settings, address: str) -> None:
    """``poshuk serve --ray``: the sharded archive at ``index_dir`` on Ray Serve (``service.ray_serving``),
    after checks that raise before anything starts: an archive, Ray installed, the model it was built with."""
    from service.ray_serving import checked_archive, require_serve
    from service.ray_serving import serve_on_ray as run

    checked_archive(index_dir)
    require_serve()
    check_model(index_dir, _read_only(settings))  # reading the manifest changes no file
    run(index_dir, settings, address)


def serve(index_dir: Path, settings: Settings) -> None:
    """Serve the index at ``index_dir`` on ``settings.service.host:port`` until interrupted.

    A missing or corrupt index, or a model that is not available offline, raises
    ``PoshukError`` here, before anything listens, so the CLI can print one line and exit
    non-zero; so does a model whose weights differ from the index's. These checks are
    cheap; the model itself loads after the server starts, and ``/readyz`` says when
    searches can be answered.
    """
    check_model(index_dir, settings)
    # One OpenMP thread per FAISS search by default: the service answers concurrent requests
    # in a thread pool, so the cores are already shared between searches (and the encoder);
    # an OpenMP team per search only adds contention and spin-waits. Measured on the 2-core
    # machine under concurrent load, one thread per search was ~5x faster than two
    # (benchmarks/results/scale.md searches with one). Set at service start, not at import (the
    # CLI's indexing keeps FAISS's default); ``Searcher.open`` sets the same for library searches.
    set_search_threads(settings.service.faiss_threads)
    trim_promptly()  # the BM25 postings' build frees large temporaries in the upkeep thread (poshuk.memory)
    app = create_app(settings, index_dir)
    limits = settings.service
    level = limits.log_level
    raise_open_files_limit()
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, so any local proxy or tunnel
    # would let a client pick the address the rate limit counts: only named proxies are believed.
    uvicorn.run(
        app,
        host=settings.service.host,
        port=settings.service.port,
        log_level=level,
        log_config=log_config(level),
        access_log=False,  # poshuk.access logs each request (service.metrics)
        lifespan="on",
        # asyncio, not uvicorn's "auto": installing the ray extra brings uvloop, which would swap the
        # event loop the connection cap and the descriptor-exhaustion logging were built and tested on.
        loop="asyncio",
        server_header=False,
        http=bounded_protocol(limits),
        proxy_headers=bool(limits.trusted_proxies),
        forwarded_allow_ips=list(limits.trusted_proxies) or None,
    )
