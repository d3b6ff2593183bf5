"""Poshuk: semantic search over Ukrainian and English news.

The names below are the library's public surface; other newsroom tools import them
from ``poshuk`` directly (a test keeps ``__all__`` honest).
"""

from poshuk.client import AsyncClient, Client
from poshuk.documents import Article, Passage
from poshuk.encoder import Encoder, HashEncoder, ModelIdentity, SentenceTransformerEncoder
from poshuk.errors import (
    AuthError,
    BadRecordError,
    ConfigError,
    IndexCorruptError,
    IndexNotFoundError,
    IndexStoreError,
    InputError,
    InvalidQueryError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
    PoshukError,
    ServiceUnavailableError,
)
from poshuk.onnx_encoder import OnnxEncoder
from poshuk.search import Hit, IndexStats, Searcher, SearchResult
from poshuk.settings import ChunkingSettings, ServiceSettings, Settings, load_settings

__all__ = [
    "Article",
    "AsyncClient",
    "AuthError",
    "BadRecordError",
    "ChunkingSettings",
    "Client",
    "ConfigError",
    "Encoder",
    "HashEncoder",
    "Hit",
    "IndexCorruptError",
    "IndexNotFoundError",
    "IndexStats",
    "IndexStoreError",
    "InputError",
    "InvalidQueryError",
    "ModelError",
    "ModelIdentity",
    "ModelMismatchError",
    "NotFoundError",
    "OnnxEncoder",
    "Passage",
    "PoshukError",
    "SearchResult",
    "Searcher",
    "SentenceTransformerEncoder",
    "ServiceSettings",
    "ServiceUnavailableError",
    "Settings",
    "load_settings",
]
