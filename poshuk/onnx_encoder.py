"""Text -> vectors on ONNX Runtime, without torch.

``OnnxEncoder`` runs the export that ``poshuk.onnx_export.ensure_onnx`` caches beside a model
folder, with onnxruntime and the ``tokenizers`` library, and does what sentence-transformers does
around the transformer: prompts (``query: ``/``passage: `` from the folder's config), truncation
to the model's limit, mean pooling over the attention mask and L2 normalisation. Texts are
batched by token length so little work goes to padding. ``export_onnx`` is re-exported here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from poshuk.documents import clean_text
from poshuk.encoder import ModelIdentity, Vectors
from poshuk.errors import ModelError
from poshuk.onnx_export import FP32_FILE, INT8_FILE, ONNX_DIR, export_onnx, read_export, read_layout
from poshuk.sentencepiece_tokenizer import SentencePieceTokenizer

__all__ = ["OnnxEncoder", "Variant", "export_onnx", "mean_pool", "physical_cores"]

_SERVE_HINT = "install onnxruntime and tokenizers (dependencies of poshuk) or set POSHUK_ENCODER=torch"

Variant = Literal["int8", "fp32"]


def physical_cores() -> int:
    """Physical cores this process may run on: one onnxruntime thread each (a second thread per core
    only competes for the same vector units)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores: set[str] = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        for name in ("core_cpus_list", "thread_siblings_list"):
            with contextlib.suppress(OSError):
                cores.add((topology / name).read_text().strip())
                break
        else:
            return max(1, len(cpus))
    return max(1, len(cores))


def mean_pool(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> Vectors:
    """sentence-transformers' mean pooling then L2 normalisation: (batch, seq, dim) -> (batch, dim)."""
    weights = mask.astype(np.float32)
    summed = np.einsum("bsd,bs->bd", hidden.astype(np.float32, copy=False), weights)
    counts = np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    means = summed / counts
    norms = np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(means / norms, dtype=np.float32)


class TokenIds(Protocol):
    """Token ids as the model's tokenizer.json defines them."""

    def ids(self, texts: Sequence[str], max_length: int) -> list[list[int]]: ...

    def count(self, text: str) -> int: ...


class _TokenizersIds:
    """tokenizer.json on the ``tokenizers`` library: any pipeline, more memory (see SentencePieceTokenizer)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def ids(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Ids with special tokens, truncated like transformers does (content first)."""
        rows: list[list[int]] = []
        for text, encoding in zip(texts, self._tokenizer.encode_batch(list(texts)), strict=True):
            ids: list[int] = encoding.ids
            if len(ids) > max_length:
                bare = self._tokenizer.encode(text, add_special_tokens=False)
                bare.truncate(max_length - self._tokenizer.num_special_tokens_to_add(False))
                ids = self._tokenizer.post_process(bare).ids
            rows.append(ids)
        return rows

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)


def load_token_ids(path: Path) -> TokenIds:
    """sentencepiece for the XLM-R-style Unigram pipeline it reproduces, else ``tokenizers``."""
    from tokenizers import Tokenizer

    raw = path.read_bytes()
    fast = SentencePieceTokenizer.from_tokenizer_json(raw)
    return fast if fast is not None else _TokenizersIds(Tokenizer.from_str(raw.decode("utf-8")))


class OnnxEncoder:
    """The cached ONNX export of a model folder (see ``ensure_onnx``) on onnxruntime's CPU provider.

    ``threads`` sets onnxruntime's intra-op pool (default: physical cores); ``spin_wait`` lets its
    threads spin between runs (best when the encoder has the cores to itself, as when indexing);
    batches are grouped by token length so little time goes to padding.
    """

    def __init__(
        self,
        folder: Path,
        *,
        name: str,
        weights_sha256: str,
        variant: Variant = "int8",
        threads: int | None = None,
        batch_size: int = 32,
        spin_wait: bool = True,
    ) -> None:
        try:
            import onnxruntime as ort
            import tokenizers  # noqa: F401  (the fallback tokenizer; fail here, before the model loads)
        except ImportError as exc:
            raise ModelError(f"the ONNX encoder needs onnxruntime and tokenizers ({exc})", hint=_SERVE_HINT) from None
        layout = read_layout(folder)
        record = read_export(folder)
        if record is None:
            raise ModelError(
                f"{folder} has no ONNX export",
                hint="run `poshuk model install` (it builds one) or load the model with POSHUK_ENCODER=onnx-int8 once",
            )
        if record.weights_sha256 != weights_sha256:
            raise ModelError(f"the ONNX export in {folder / ONNX_DIR} was built from other weights")
        path = folder / ONNX_DIR / (INT8_FILE if variant == "int8" else FP32_FILE)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or physical_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads answer the next run sooner but hold the cores other requests need (serving).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
        options.log_severity_level = 3  # errors only: ORT warns about initializers it folds away
        try:
            self._session: Any = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._tokens = load_token_ids(layout.transformer_dir / "tokenizer.json")
        except Exception as exc:  # onnxruntime and tokenizers raise their own types
            raise ModelError(
                f"cannot load the ONNX model {path}: {exc}", hint="rebuild it: delete the onnx folder"
            ) from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing or len(self._session.get_outputs()) != 1:
            raise ModelError(f"{path} is not a transformer export (inputs {sorted(self._inputs)})")
        self._max_len = layout.max_seq_length
        self._pad_id = layout.pad_id
        self._batch_size = batch_size
        dimension = self._session.get_outputs()[0].shape[-1]
        if not isinstance(dimension, int):
            dimension = self._run([[0, 2]]).shape[1]
        self._identity = ModelIdentity(
            name=name,
            weights_sha256=weights_sha256,
            dimension=int(dimension),
            query_prompt=layout.query_prompt,
            passage_prompt=layout.passage_prompt,
            backend=f"onnx-{variant}",
        )

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def _run(self, rows: Sequence[Sequence[int]]) -> Vectors:
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self._session.run(None, feed)
        return mean_pool(np.asarray(hidden, dtype=np.float32), mask)

    def _encode(self, texts: Sequence[str], prompt: str) -> Vectors:
        out = np.zeros((len(texts), self._identity.dimension), dtype=np.float32)
        if not texts:
            return out
        rows = self._tokens.ids([prompt + clean_text(t) for t in texts], self._max_len)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]), reverse=True)
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            out[batch] = self._run([rows[i] for i in batch])
        return out

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, self._identity.query_prompt)

    def encode_passages(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, self._identity.passage_prompt)

    def count_tokens(self, text: str) -> int:
        return self._tokens.count(clean_text(text))
