"""Poshuk: semantic search over Ukrainian and English news.

The names below are the library's public surface; other newsroom tools import them
from ``poshuk`` directly (a test keeps ``__all__`` honest).

``import poshuk`` stays light: the HTTP client, settings, errors and result structs load
at once; the names that need FAISS, numpy, SQLite or a model runtime (``Searcher``, the
encoders, ``StoredDocument``) load on first use (PEP 562 ``__getattr__``), so a tool that
only talks to a service over HTTP never imports them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from poshuk.client import AsyncClient, Client
from poshuk.documents import Article, Page, Passage
from poshuk.errors import (
    AuthError,
    BadRecordError,
    ConfigError,
    IndexBusyError,
    IndexCorruptError,
    IndexNotFoundError,
    IndexReadOnlyError,
    IndexRetiredError,
    IndexStoreError,
    InputError,
    InvalidQueryError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
    PoshukError,
    ServiceUnavailableError,
    ShardUnavailableError,
    StorageFullError,
)
from poshuk.filters import Filters
from poshuk.settings import AlertSettings, AuthSettings, ChunkingSettings, ServiceSettings, Settings, load_settings
from poshuk.wire import (
    Alert,
    AlertMatch,
    AlertMatches,
    FacetBucket,
    Hit,
    IndexStats,
    SearchResult,
    Span,
    WebhookNotification,
    WriteResult,
)

if TYPE_CHECKING:
    from poshuk.alerts import Alerts
    from poshuk.encoder import Encoder, HashEncoder, ModelIdentity, SentenceTransformerEncoder
    from poshuk.index import StoredDocument, StoredPassage
    from poshuk.onnx_encoder import OnnxEncoder
    from poshuk.search import Searcher

# name -> the module that defines it, imported on first access
_LAZY = {
    "Alerts": "poshuk.alerts",
    "Encoder": "poshuk.encoder",
    "HashEncoder": "poshuk.encoder",
    "ModelIdentity": "poshuk.encoder",
    "SentenceTransformerEncoder": "poshuk.encoder",
    "OnnxEncoder": "poshuk.onnx_encoder",
    "Searcher": "poshuk.search",
    "StoredDocument": "poshuk.index",
    "StoredPassage": "poshuk.index",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'poshuk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Alert",
    "AlertMatch",
    "AlertMatches",
    "AlertSettings",
    "Alerts",
    "Article",
    "AsyncClient",
    "AuthError",
    "AuthSettings",
    "BadRecordError",
    "ChunkingSettings",
    "Client",
    "ConfigError",
    "Encoder",
    "FacetBucket",
    "Filters",
    "HashEncoder",
    "Hit",
    "IndexBusyError",
    "IndexCorruptError",
    "IndexNotFoundError",
    "IndexReadOnlyError",
    "IndexRetiredError",
    "IndexStats",
    "IndexStoreError",
    "InputError",
    "InvalidQueryError",
    "ModelError",
    "ModelIdentity",
    "ModelMismatchError",
    "NotFoundError",
    "OnnxEncoder",
    "Page",
    "Passage",
    "PoshukError",
    "SearchResult",
    "Searcher",
    "SentenceTransformerEncoder",
    "ServiceSettings",
    "ServiceUnavailableError",
    "Settings",
    "ShardUnavailableError",
    "Span",
    "StorageFullError",
    "StoredDocument",
    "StoredPassage",
    "WebhookNotification",
    "WriteResult",
    "load_settings",
]
