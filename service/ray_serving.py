"""``poshuk serve --index DIR --ray ADDRESS|local``: a sharded archive served by Ray Serve (issue 12).

Deployments (``../shared/docs/scale-out-ray.md`` sections 4 and 6):

- ``Shard-shard-NNN``, one per shard (replicas of one deployment cannot hold different data): opens
  ``DIR/shard-NNN`` (changing no file with ``service.read_only``), answers the router's questions
  and writes its part of each write in its own process (``poshuk.shards.wire``: plain msgspec JSON
  as bytes both ways, never a pickle of our own objects). Each shard's files have one process.
- ``Writer``, one replica (unless ``service.read_only``): the archive's one ``ShardedWriter``
  (``poshuk.shards.writer``: global row ids and story clusters decided from the shards' answers,
  the journal ``DIR/writes.sqlite``; durable on the answer) over the shard deployments. Its
  questions: ``poshuk.shards.writer_wire``.
- ``Ingress``: the existing Litestar app (``service.app.create_app``) as Serve's ASGI ingress, with
  the encoder and the router: a ``ShardedIndex`` over ``RemoteShard``s, so ranking, merging,
  paging and highlights are the in-process code, and the answers are one node's. Same routes,
  schemas, errors, page, metrics, auth and limits. An article's reads go to its owner shard; a
  write is encoded here (``poshuk.ingest.prepare``) and made by the Writer through its owner
  shards before the answer, so it is searchable when the request returns.

A shard that does not answer within ``service.shard_timeout_s`` fails the request with 503
problem+json ``shard-unavailable``, never a partial answer; so does a Writer that does not answer
within ``service.request_timeout_s`` (the write may still have been made: writes replace by id, so
a retry is safe). ``service.read_only`` (``--read-only``) deploys no Writer and opens every shard
changing no file: writes get the read-only 405.

Serve's pitfalls, handled here: a handle's ``.result()`` raises inside an event loop, so the
shards are only asked from threads (the app's loader thread and its ``sync_to_thread`` routes, the
Writer's opening thread and Serve's thread pool for its sync ``ask``; ``/readyz`` and ``/metrics``
read counts cached at load and after writes); and Serve's proxy adds its own
``x-request-id`` to each answer (the same id it put on the request, which the app logs), so the
app's copy is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec

from poshuk.encoder import Encoder, HashEncoder
from poshuk.errors import ConfigError, ShardUnavailableError
from poshuk.index import Index, live_version
from poshuk.integrity import check_integrity
from poshuk.settings import Settings
from poshuk.shards import ShardedIndex, ShardSet, is_sharded, read_set
from poshuk.shards.shard import LocalShard
from poshuk.shards.wire import RemoteShard, answer
from poshuk.shards.writer import ShardedWriter
from poshuk.shards.writer_wire import RemoteWriter, answer_write
from poshuk.vectors import set_search_threads

logger = logging.getLogger("poshuk.service")

RAY_HINT = "install the ray extra: pip install 'poshuk[ray]'"
LOCAL = "local"  # `--ray local`: start Ray on this machine
APP_NAME = "poshuk"
LOAD_WAIT_S = 300.0  # how long the ingress waits for a shard's first answer while the deployments start

ASGIApp = Callable[[Any, Any, Any], Any]


def require_serve() -> ModuleType:
    """``ray.serve``, or a ``ConfigError`` that names the extra to install."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise ConfigError("--ray needs Ray, which this install lacks", hint=RAY_HINT) from None
    del ray
    return serve


def checked_archive(index_dir: Path) -> ShardSet:
    """The shard set of ``index_dir``, or a ``ConfigError`` if it holds one index (or none)."""
    if not is_sharded(index_dir):
        raise ConfigError(
            f"--ray serves a sharded archive; {index_dir} is none",
            hint="split one with `poshuk index PATH --index DIR --shards N`, or serve one index without --ray",
        )
    return read_set(index_dir)


def descendants(root: int) -> list[int]:
    """Every process below ``root``, read from /proc (empty where there is none): what a Ray
    started by this process runs."""
    parents: dict[int, int] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def stop_leftovers(pids: list[int]) -> None:
    """Stop, by id, the processes a Ray started here left running after ``ray.shutdown()`` (observed:
    a node's DashboardAgent and RuntimeEnvAgent outlive it and ignore SIGTERM)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class ShardServer:
    """The body of a ``Shard-shard-NNN`` deployment: one shard folder, which this replica alone reads
    and writes (the Writer sends it its part of each write, rows and clusters decided)."""

    def __init__(self, folder: str, settings_json: bytes) -> None:
        settings = msgspec.json.decode(settings_json, type=Settings)
        set_search_threads(settings.service.faiss_threads)  # one thread: the scores one node gives
        check_integrity(live_version(Path(folder)))
        index = Index.open(
            Path(folder),
            approximate_above=settings.approximate_above,
            read_only=settings.service.read_only,
            lexical_in_memory=settings.lexical_in_memory,
        )
        self.shard = LocalShard(index)
        # Its statistics and own top rows then come from memory (nothing is built when the setting is off).
        threading.Thread(target=self._load_lexical, name="poshuk-shard-postings", daemon=True).start()

    def _load_lexical(self) -> None:
        try:
            self.shard.load_lexical()
        except Exception:  # FTS5 keeps answering, alike
            logger.exception("cannot build the shard's BM25 postings")

    def ask(self, payload: bytes) -> bytes:
        return answer(self.shard, payload)

    def __del__(self) -> None:
        """Serve stops the replica: the shard's FAISS snapshot (a fast next start; none when read-only)."""
        shard = getattr(self, "shard", None)
        if shard is None:
            return
        try:
            shard.snapshot()
        except Exception:
            logger.exception("cannot write the shard's FAISS snapshot")
        shard.close()


class WriterServer:
    """The body of the ``Writer`` deployment: the archive's one ``ShardedWriter`` over the shard
    deployments, and its journal (``DIR/writes.sqlite``). It opens in a thread of its own when the
    replica starts (a write a crash cut is finished then), since it waits for every shard."""

    def __init__(self, index_dir: str, settings_json: bytes, *handles: Any) -> None:
        self.settings = msgspec.json.decode(settings_json, type=Settings)
        self.index_dir = Path(index_dir)
        self.handles = handles
        self.writer: ShardedWriter | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._open_quietly, name="poshuk-writer-open", daemon=True).start()

    def _open_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the first write tries again, and answers the error
            self.open()

    def open(self) -> ShardedWriter:
        with self._lock:
            if self.writer is None:
                shard_set = read_set(self.index_dir)
                callers = [
                    _Caller(handle, f"shard {name}", LOAD_WAIT_S)
                    for handle, name in zip(self.handles, shard_set.shards, strict=True)
                ]
                shards = [RemoteShard(caller) for caller in callers]
                for caller in callers:
                    caller.timeout_s = self.settings.service.request_timeout_s or None  # a shard's part of a write
                self.writer = ShardedWriter(self.index_dir, shard_set, shards)
            return self.writer

    def ask(self, payload: bytes) -> bytes:
        return answer_write(self.open, payload)

    def __del__(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()


class _Caller:
    """Bytes to one deployment (a shard, the writer) and back, within ``timeout_s``; any failure of
    the trip (timeout, dead replica, no replica) is ``ShardUnavailableError``."""

    def __init__(self, handle: Any, name: str, timeout_s: float | None) -> None:
        self.handle, self.name, self.timeout_s = handle, name, timeout_s  # None: no limit

    def __call__(self, payload: bytes) -> bytes:
        response = None
        try:
            response = self.handle.ask.remote(payload)
            reply = response.result(timeout_s=self.timeout_s)
        except Exception as exc:
            if response is not None:  # no answer is awaited any more: do not leave it queued at the shard
                with contextlib.suppress(Exception):
                    response.cancel()
            within = "" if self.timeout_s is None else f" within {self.timeout_s:g} s"
            raise ShardUnavailableError(
                f"{self.name} did not answer{within} ({type(exc).__name__})",
                hint="retry shortly; the service answers only with every shard (a write may have been made: "
                "writes replace by id, so retrying one is safe)",
            ) from None
        return bytes(reply)


def one_request_id(app: ASGIApp) -> ASGIApp:
    """``app`` without its own ``x-request-id`` answer header: Serve's proxy adds the same id."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_once(message: Any) -> None:
            if message.get("type") == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
            await send(message)

        await app(scope, receive, send_once)

    return wrapped


class IngressServer:
    """The body of the ``Ingress`` deployment: the Litestar app over the remote shards."""

    def __init__(
        self,
        settings_json: bytes,
        index_dir: str,
        *handles: Any,
        writer: Any = None,
        encoder_dimension: int | None = None,
    ) -> None:
        self.settings = msgspec.json.decode(settings_json, type=Settings)
        self.index_dir = Path(index_dir)
        self.shard_set = read_set(self.index_dir)
        self.handles = handles
        self.writer = writer  # the Writer deployment's handle; None: read-only
        self.encoder: Encoder | None = None if encoder_dimension is None else HashEncoder(dimension=encoder_dimension)

    def open_shards(self) -> ShardedIndex:
        """The router (called in the app's loader thread): waits for each shard's first answer, then
        holds every later question to ``service.shard_timeout_s``."""
        callers = [
            _Caller(handle, f"shard {name}", LOAD_WAIT_S)
            for handle, name in zip(self.handles, self.shard_set.shards, strict=True)
        ]
        shards = [RemoteShard(caller) for caller in callers]
        for caller in callers:
            caller.timeout_s = self.settings.service.shard_timeout_s
        router = ShardedIndex(self.index_dir, self.shard_set, shards, parallel=True)
        if self.writer is not None:
            call = _Caller(self.writer, "the archive's writer", LOAD_WAIT_S)
            writer = RemoteWriter(call, self.shard_set, shards)
            writer.open()
            call.timeout_s = self.settings.service.request_timeout_s or None  # 0: no limit
            router.writer = writer
        return router

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from service.app import create_app

        return one_request_id(create_app(self.settings, self.index_dir, encoder=self.encoder, reader=self.open_shards))


def deploy(index_dir: Path, settings: Settings, *, encoder_dimension: int | None = None) -> None:
    """Deploy the archive's shards and the ingress on the Ray this process has joined, answering
    HTTP at ``service.host:port``; returns once every deployment is up (the app then loads, and
    ``/readyz`` says when it can answer). ``encoder_dimension``: tests' ``HashEncoder`` in place of
    the model."""
    serve = require_serve()
    shard_set = checked_archive(index_dir)
    settings_json = msgspec.json.encode(settings)
    quiet = {"enable_access_log": False, "log_level": "WARNING"}  # poshuk.access logs each request
    shard_class = serve.deployment(ShardServer, ray_actor_options={"num_cpus": 1}, logging_config=quiet)
    shards = [
        shard_class.options(name=f"Shard-{name}").bind(str(index_dir / name), settings_json)
        for name in shard_set.shards
    ]
    ingress_class = serve.deployment(
        serve.ingress()(IngressServer), name="Ingress", ray_actor_options={"num_cpus": 1}, logging_config=quiet
    )
    writer = None
    if not settings.service.read_only:
        writer_class = serve.deployment(WriterServer, ray_actor_options={"num_cpus": 1}, logging_config=quiet)
        writer = writer_class.options(name="Writer").bind(str(index_dir), settings_json, *shards)
    app = ingress_class.bind(settings_json, str(index_dir), *shards, writer=writer, encoder_dimension=encoder_dimension)
    serve.start(http_options={"host": settings.service.host, "port": settings.service.port})
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False, logging_config=quiet)


def serve_on_ray(index_dir: Path, settings: Settings, address: str, *, encoder_dimension: int | None = None) -> None:
    """``poshuk serve --ray``: join Ray at ``address`` (or start one here for ``local``), deploy, and
    serve until SIGINT or SIGTERM; then the deployments are removed (and a Ray started here stops)."""
    serve = require_serve()
    import ray

    shard_set = checked_archive(index_dir)
    started = not ray.is_initialized()
    if started:
        local = address == LOCAL
        try:
            ray.init(
                address=LOCAL if local else address,
                num_cpus=len(shard_set.shards) + 3 if local else None,  # a replica each, whatever the cores
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot join Ray at {address!r}: {exc}") from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    ours = descendants(os.getpid()) if started else []
    try:
        deploy(index_dir, settings, encoder_dimension=encoder_dimension)
        logger.info(
            "serving %s (%d shards) on Ray at http://%s:%d",
            index_dir,
            len(shard_set.shards),
            settings.service.host,
            settings.service.port,
        )
        print(f"serving on http://{settings.service.host}:{settings.service.port}", flush=True)
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        ours += descendants(os.getpid()) if started else []
        try:
            serve.shutdown()
        finally:
            if started:
                ray.shutdown()
                stop_leftovers(sorted(set(ours)))
