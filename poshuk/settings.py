"""Poshuk's settings: frozen typed objects, declared once.

Each field carries its documentation in ``msgspec.Meta(description=...)``; the CLI's
help, the README's settings table (``settings_table()``) and a test that every
setting is documented all read the same declaration. Values come from, in order of
precedence: explicit overrides (CLI flags), ``POSHUK_*`` environment variables, a
TOML file (``POSHUK_CONFIG``), and the defaults below. Nothing is read at import.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from poshuk.errors import ConfigError

ENV_PREFIX = "POSHUK_"
DEFAULT_MODEL = "multilingual-e5-small"
DEFAULT_APPROXIMATE_ABOVE = 200_000


def _doc(text: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **constraints)


class ChunkingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How articles are cut into passages; recorded in every index manifest."""

    max_tokens: Annotated[
        int, _doc("Upper bound of model tokens in one passage (title context included).", ge=32, le=480)
    ] = 200
    min_chars: Annotated[int, _doc("Paragraphs shorter than this are merged with their neighbour.", ge=0, le=4000)] = (
        160
    )
    title_context: Annotated[bool, _doc("Prepend the article title to each passage when embedding it.")] = True


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The HTTP service: address and per-request limits."""

    host: Annotated[str, _doc("Address `poshuk serve` binds to.")] = "127.0.0.1"
    port: Annotated[int, _doc("TCP port `poshuk serve` listens on.", ge=0, le=65535)] = 8000
    max_query_chars: Annotated[int, _doc("Longest accepted query, in characters.", ge=1)] = 1000
    max_k: Annotated[int, _doc("Largest number of hits one search may ask for.", ge=1, le=1000)] = 100
    max_body_bytes: Annotated[int, _doc("Largest accepted request body, in bytes; larger bodies get 413.", ge=1024)] = (
        65536
    )
    log_level: Annotated[Literal["debug", "info", "warning", "error"], _doc("Log level of the service.")] = "info"
    max_write_body_bytes: Annotated[
        int, _doc("Largest accepted body of a write (`PUT`/`POST /v1/documents`), in bytes; larger get 413.", ge=1024)
    ] = 8 * 1024 * 1024
    max_batch_documents: Annotated[
        int, _doc("Most articles one `POST /v1/documents` batch may hold; more get 413.", ge=1, le=100_000)
    ] = 500
    request_timeout_s: Annotated[
        float, _doc("A request not answered within this many seconds gets 503 problem+json (0: no limit).", ge=0)
    ] = 30.0
    shard_timeout_s: Annotated[
        float,
        _doc(
            "A sharded archive served on Ray (`poshuk serve --ray`): seconds one shard may take to answer one "
            "question before the request gets 503 problem+json `shard-unavailable` (never a partial answer).",
            gt=0,
            le=600,
        ),
    ] = 3.0
    rate_limit_per_second: Annotated[
        float,
        _doc(
            "Requests per second each API key (or, without a key, each client address) may make on average; "
            "beyond the burst they get 429 with `Retry-After` (0: no limit). The default is about a tenth of "
            "what two CPU cores answer (default searches), so a few keys cannot take the whole server.",
            ge=0,
        ),
    ] = 10.0
    rate_limit_burst: Annotated[
        int, _doc("Requests a key or client may make at once before `rate_limit_per_second` applies.", ge=1)
    ] = 30
    snapshot_every_writes: Annotated[
        int,
        _doc("Write the FAISS snapshot after this many applied changes (and on shutdown); 0: only on shutdown.", ge=0),
    ] = 1000
    reload_grace_s: Annotated[
        float,
        _doc("After switching to a new index version, the old one stays open this long for requests in flight.", ge=0),
    ] = 30.0
    batch_queries: Annotated[
        bool,
        _doc("Encode queries that arrive while the model is busy together, in one call (higher throughput)."),
    ] = True
    log_queries: Annotated[
        bool, _doc("Log each search's query text at info level (off: queries are never logged, for privacy).")
    ] = False
    search_slots: Annotated[
        int,
        _doc(
            "Searches `poshuk serve` runs at once (0: one per physical core). When all are busy the next slot goes "
            "to the waiting client (API key, or address without one) that used the least server time lately, so "
            "a few heavy clients cannot make everyone else wait behind them.",
            ge=0,
            le=1024,
        ),
    ] = 0
    client_time_share: Annotated[
        float,
        _doc(
            "Server time each API key (or client address without one) may spend in searches and writes, in "
            "seconds per second on average (over a 10 s half-life); past it, its searches and writes get 429 with "
            "`Retry-After` until its use decays (0: no limit). At the default a client alone sustains about three "
            "to six new-query searches a second on two cores, after a burst of about 2 s of work; four clients at "
            "their limit left people's search p50 at 1.2x the quiet one (`benchmarks reliability --hostile`).",
            ge=0,
        ),
    ] = 0.15
    faiss_threads: Annotated[
        int,
        _doc(
            "OpenMP threads one FAISS search may use, in `poshuk serve`, `poshuk search` and the library alike "
            "(0: one per core; the thread split changes scores in the last bit, so all three rank alike only with "
            "the same number). Concurrent requests already keep the cores busy; more threads per search only "
            "contend (5x slower at 2 cores).",
            ge=0,
            le=256,
        ),
    ] = 1
    header_timeout_s: Annotated[
        float,
        _doc(
            "A connection that has not sent a whole request head (line and headers) within this many seconds "
            "of opening, or of its last answer, is closed: half-open connections cannot pile up. A request body "
            "gets this long plus its length at 64 KiB/s.",
            gt=0,
        ),
    ] = 10.0
    max_connections: Annotated[
        int,
        _doc(
            "Open connections the service holds at once; a request on a connection beyond them gets 503 "
            "problem+json and the connection is closed.",
            ge=1,
        ),
    ] = 1000
    trusted_proxies: Annotated[
        tuple[str, ...],
        _doc(
            "Addresses or networks (`10.0.0.0/8`) of reverse proxies whose `X-Forwarded-For`/`-Proto` are "
            "believed; empty (the default): the headers are ignored, so a client cannot choose the address "
            "the rate limit counts (env: comma-separated)."
        ),
    ] = ()
    encoder_spin_wait: Annotated[
        bool,
        _doc(
            "Let the ONNX encoder's threads spin between queries instead of sleeping. Measured on 2 cores: "
            "7 ms lower p50 for one user at a time, 15% fewer queries per second under concurrent load."
        ),
    ] = False
    read_only: Annotated[
        bool,
        _doc(
            "Serve the index without changing any file in its folder (a read-only mount): writes over HTTP get "
            "405, SQLite is opened read-only, no FAISS snapshot is written; new versions are still picked up "
            "(`poshuk serve --read-only`)."
        ),
    ] = False


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """API keys: who may write, and whether reading needs a key too."""

    keys: Annotated[
        tuple[Annotated[str, msgspec.Meta(pattern="^sha256:[0-9a-f]{64}$")], ...],
        _doc(
            "SHA-256 hashes (`sha256:<64 hex>`) of the API keys allowed to write; `poshuk key new` makes a key and "
            "its hash. Without any, writes are refused (env: comma-separated)."
        ),
    ] = ()
    read_requires_key: Annotated[bool, _doc("Searches and reads need a key too (otherwise they are open).")] = False


class AlertSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Saved searches that alert on new articles (``poshuk.alerts``), and their webhooks."""

    threshold: Annotated[
        float,
        _doc(
            "An alert's default meaning threshold: the cosine between its query and a new article's best passage "
            "at or above which the article matches (`benchmarks/results/alerts.md` measures precision and recall).",
            ge=0.0,
            le=1.0,
        ),
    ] = 0.83
    max_alerts: Annotated[int, _doc("Most saved searches one index may hold.", ge=1, le=1_000_000)] = 20_000
    allow_private_webhooks: Annotated[
        bool,
        _doc(
            "Let webhooks target loopback, private, link-local and other non-public addresses (off: such a target "
            "is refused when the alert is made and again before each delivery, so an alert cannot reach internal "
            "services)."
        ),
    ] = False
    webhook_timeout_s: Annotated[float, _doc("Seconds one webhook delivery may take.", gt=0, le=60)] = 5.0
    webhook_retry_s: Annotated[
        float,
        _doc("Wait before a failed delivery's first retry; it doubles with each failure, up to an hour.", gt=0),
    ] = 2.0
    webhook_attempts: Annotated[
        int, _doc("Deliveries tried before a notification is given up (it stays in its alert's matches).", ge=1)
    ] = 12


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything Poshuk can be configured with."""

    home: Annotated[str, _doc("Cache folder for provisioned models (env POSHUK_HOME).")] = "~/.cache/poshuk"
    model: Annotated[
        str,
        _doc("Embedding model: a provisioned name, a sentence-transformers id or a local folder."),
    ] = DEFAULT_MODEL
    device: Annotated[str, _doc("Torch device for the encoder (cpu, cuda, ...).")] = "cpu"
    encoder: Annotated[
        Literal["torch", "onnx-int8", "onnx-fp32"],
        _doc(
            "Encoder backend: ONNX Runtime on the CPU without torch, `onnx-fp32` (the default: torch's "
            "vectors up to rounding) or `onnx-int8` (fastest; vectors within cosine 0.99 of torch's, recall@10 "
            "up to 0.6 point lower on the benchmark sets); or `torch` (sentence-transformers; needed for a GPU "
            "`device`). The ONNX export is built once beside the model (`poshuk model install` does it)."
        ),
    ] = "onnx-fp32"
    allow_backend_mismatch: Annotated[
        bool,
        _doc(
            "Search an index built with another encoder backend of the same model "
            "(its vectors are close to, not identical with, the index's)."
        ),
    ] = False
    batch_size: Annotated[int, _doc("Passages encoded per model call.", ge=1, le=4096)] = 32
    query_cache_size: Annotated[
        int, _doc("Query vectors kept in an LRU cache, so a repeated query skips the model (0: no cache).", ge=0)
    ] = 1024
    approximate_above: Annotated[
        int,
        _doc(
            "Passages above which vector search becomes approximate (FAISS IVF with 8-bit scalar "
            "quantisation, a quarter of the memory; recall against exact search in "
            "`benchmarks/results/scale.md`); at or below it, search is exact. Applied when a FAISS snapshot "
            "is written or the vectors are rebuilt.",
            ge=0,
        ),
    ] = DEFAULT_APPROXIMATE_ABOVE
    lexical_in_memory: Annotated[
        bool,
        _doc(
            "Hold the BM25 postings in memory in `poshuk serve` (built in the background after it starts: "
            "about 5 s and 100 MB of RSS over 107,560 passages; FTS5 answers until then): the same rows and scores as "
            "SQLite's FTS5 in about a third of the time. Off: FTS5 answers every search."
        ),
    ] = True
    chunking: ChunkingSettings = ChunkingSettings()
    service: ServiceSettings = ServiceSettings()
    auth: AuthSettings = AuthSettings()
    alerts: AlertSettings = AlertSettings()

    @property
    def home_path(self) -> Path:
        """``home`` with ``~`` expanded."""
        return Path(self.home).expanduser()


_SECTIONS: dict[str, type[msgspec.Struct]] = {
    "chunking": ChunkingSettings,
    "service": ServiceSettings,
    "auth": AuthSettings,
    "alerts": AlertSettings,
}
_LIST_FIELDS = frozenset({"auth.keys", "service.trusted_proxies"})  # comma-separated in the environment


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``POSHUK_MODEL`` -> ``model``; ``POSHUK_SERVICE_PORT`` -> ``service.port``."""
    out: dict[str, Any] = {}
    top = {f.name for f in msgspec.structs.fields(Settings)} - set(_SECTIONS)
    for name in top:
        value = env.get(ENV_PREFIX + name.upper())
        if value is not None:
            out[name] = value
    for section, struct in _SECTIONS.items():
        for field in msgspec.structs.fields(struct):
            value = env.get(f"{ENV_PREFIX}{section.upper()}_{field.name.upper()}")
            if value is not None:
                listed = f"{section}.{field.name}" in _LIST_FIELDS
                out.setdefault(section, {})[field.name] = (
                    [v.strip() for v in value.split(",") if v.strip()] if listed else value
                )
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    config_file: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build ``Settings`` from a TOML file, ``POSHUK_*`` variables and overrides.

    ``env`` defaults to ``os.environ``; pass a dict in tests to stay isolated.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = config_file or (Path(env["POSHUK_CONFIG"]) if env.get("POSHUK_CONFIG") else None)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"settings file not found: {path}") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from None
    data = _merge(data, _env_overrides(env))
    data = _merge(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}", hint="see the settings table in the README") from None


def iter_setting_docs() -> Iterator[tuple[str, str, str, Any]]:
    """Yield (dotted name, environment variable, description, default) for every setting."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        if field.name in _SECTIONS:
            sub = msgspec.inspect.type_info(_SECTIONS[field.name])
            assert isinstance(sub, msgspec.inspect.StructType)
            for inner in sub.fields:
                env = f"{ENV_PREFIX}{field.name.upper()}_{inner.name.upper()}"
                yield f"{field.name}.{inner.name}", env, _description(inner), inner.default
        else:
            yield field.name, ENV_PREFIX + field.name.upper(), _description(field), field.default


def _description(field: msgspec.inspect.Field) -> str:
    meta = field.type
    if isinstance(meta, msgspec.inspect.Metadata) and meta.extra_json_schema:
        return str(meta.extra_json_schema.get("description", ""))
    return ""


def settings_table() -> str:
    """The README's settings table, generated from the declarations above."""
    rows = ["| setting | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for name, env, text, default in iter_setting_docs():
        rows.append(f"| `{name}` | `{env}` | `{default}` | {text} |")
    return "\n".join(rows)
