"""Text -> vectors. Queries and passages are encoded by separate calls on purpose.

``Encoder`` is the protocol every backend implements. ``SentenceTransformerEncoder``
runs a real model (with its ``query``/``passage`` prompts, e.g. e5's ``"query: "``);
``HashEncoder`` is a deterministic fake for fast unit tests, like httpx's MockTransport.
``OnnxEncoder`` (``poshuk.onnx_encoder``) runs the same weights on onnxruntime; its vectors are
close to, not identical with, torch's, which ``check_backend`` guards.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.documents import clean_text
from poshuk.errors import ModelError, ModelMismatchError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Vectors = NDArray[np.float32]


class ModelIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """What an index records about the model that built it; searches must match it."""

    name: str
    weights_sha256: str
    dimension: int
    query_prompt: str
    passage_prompt: str
    backend: str

    def compatible_with(self, other: ModelIdentity) -> bool:
        """Same weights, same prompts, same dimension: vectors are comparable.

        The backend is ignored on purpose (same weights, same vector space); ``check_backend``
        decides whether slightly different vectors of another backend are acceptable.
        """
        return (
            self.weights_sha256 == other.weights_sha256
            and self.dimension == other.dimension
            and self.query_prompt == other.query_prompt
            and self.passage_prompt == other.passage_prompt
        )


# ``ModelIdentity.backend`` -> the ``encoder`` setting that produces it.
_ENCODER_SETTING = {"sentence-transformers": "torch", "onnx-int8": "onnx-int8", "onnx-fp32": "onnx-fp32"}


def check_backend(index_backend: str, query_backend: str, *, allow: bool) -> None:
    """Raise ``ModelMismatchError`` when vectors from two encoder backends would be compared.

    ``ModelIdentity.compatible_with`` ignores the backend: the same weights give the same vector
    space. But torch fp32 and ONNX int8 vectors of one text differ slightly (cosine >= 0.99), so
    queries encoded by another backend than the index's shift scores a little; ``allow`` accepts that.
    """
    if allow or index_backend == query_backend:
        return
    setting = _ENCODER_SETTING.get(index_backend)
    match = f"set POSHUK_ENCODER={setting} to match the index, or " if setting else ""
    raise ModelMismatchError(
        f"the index was built with the {index_backend!r} encoder backend, but this encoder is "
        f"{query_backend!r}: same model, slightly different vectors",
        hint=f"{match}set POSHUK_ALLOW_BACKEND_MISMATCH=1 / --allow-backend-mismatch to accept the difference",
    )


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of ``identity.dimension``."""

    @property
    def identity(self) -> ModelIdentity: ...

    def encode_queries(self, texts: Sequence[str]) -> Vectors: ...

    def encode_passages(self, texts: Sequence[str]) -> Vectors: ...

    def count_tokens(self, text: str) -> int: ...


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local folder (never downloaded).

    Prompts come from the model's own ``prompts`` config (``query``/``passage``).
    """

    def __init__(
        self, folder: Path, *, name: str, weights_sha256: str, device: str = "cpu", batch_size: int = 32
    ) -> None:
        from sentence_transformers import SentenceTransformer

        try:
            self._model: SentenceTransformer = SentenceTransformer(str(folder), device=device, local_files_only=True)
        except Exception as exc:  # torch/transformers raise many unrelated types here
            raise ModelError(f"cannot load model from {folder}: {exc}") from exc
        prompts = {k: v for k, v in (self._model.prompts or {}).items() if v is not None}
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ModelError(f"model at {folder} does not report an embedding dimension")
        self._batch_size = batch_size
        self._identity = ModelIdentity(
            name=name,
            weights_sha256=weights_sha256,
            dimension=int(dim),
            query_prompt=prompts.get("query", ""),
            passage_prompt=prompts.get("passage", ""),
            backend="sentence-transformers",
        )

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def _encode(self, texts: Sequence[str], prompt_name: str) -> Vectors:
        if not texts:
            return np.zeros((0, self._identity.dimension), dtype=np.float32)
        kwargs: dict[str, Any] = {}
        if prompt_name in (self._model.prompts or {}):
            kwargs["prompt_name"] = prompt_name
        vectors = self._model.encode(
            [clean_text(t) for t in texts],
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
            **kwargs,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, "query")

    def encode_passages(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, "passage")

    def count_tokens(self, text: str) -> int:
        tokenizer = self._model.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:  # the Rust tokenizer counts without the over-length warning
            return len(backend.encode(clean_text(text)).ids)
        return len(tokenizer(clean_text(text), add_special_tokens=True)["input_ids"])


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEncoder:
    """Deterministic bag-of-words hashing encoder: a fake for unit tests.

    Texts sharing words get similar vectors, so ranking tests mean something, but it
    knows no language: never use it for real search.
    """

    def __init__(self, dimension: int = 64, name: str = "hash-test-encoder") -> None:
        self._identity = ModelIdentity(
            name=name,
            weights_sha256=hashlib.sha256(f"{name}:{dimension}".encode()).hexdigest(),
            dimension=dimension,
            query_prompt="",
            passage_prompt="",
            backend="hash",
        )

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def _vector(self, text: str) -> Vectors:
        vec = np.zeros(self._identity.dimension, dtype=np.float32)
        for word in _WORD.findall(clean_text(text).casefold()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self._identity.dimension
            vec[slot] += 1.0 if digest[4] % 2 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            norm = 1.0
        return vec / norm

    def _encode(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self._identity.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._vector(text)
        return out

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts)

    def encode_passages(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts)

    def count_tokens(self, text: str) -> int:
        # Roughly what an XLM-R tokenizer yields for Ukrainian news text.
        return 2 + (len(_WORD.findall(text)) * 3 + 1) // 2
