"""The ONNX export of a model, cached beside it: ``<model folder>/onnx/``.

``export_onnx`` traces the transformer of a sentence-transformers folder with the classic
``torch.onnx`` exporter (fp32 ``model.onnx``) and quantizes it with ``onnxruntime.quantization``
(``model-int8.onnx``: int8 weights, activations quantized on the fly). ``ensure_onnx`` builds
that once in a temp folder, records what it was built from in ``poshuk-onnx.json`` and renames
it into place. torch is imported only while exporting, so serving from a built export
(``poshuk.onnx_encoder``) needs onnxruntime and tokenizers, not torch.

Each model keeps its weights in a ``.data`` file beside it, large tensors at page-aligned
offsets, so onnxruntime memory-maps them instead of copying: the 384 MB word-embedding table
then costs only the pages of the tokens actually seen, and a session loads in a fraction of
the time (measured: 518 MB resident and 1.4 s to load as one file; 142 MB and 0.2 s so).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from poshuk.atomic import publish_dir
from poshuk.errors import ModelError

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
EXPORT_RECORD = "poshuk-onnx.json"
DATA_SUFFIX = ".data"  # weights file beside each model: model.onnx.data, model-int8.onnx.data
EXPORT_FORMAT = 2  # bump when the export changes, so cached exports are rebuilt (2: external weights)
_ALIGN = 64 * 1024  # covers every page and allocation granularity onnxruntime maps at
_EXTERNAL_MIN_BYTES = 1024
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
_STALE_BUILD_SECONDS = 6 * 3600


class Quantization(msgspec.Struct, frozen=True, kw_only=True):
    """``quantize_dynamic`` parameters, chosen by measurement on a 2-core AVX2 CPU without VNNI
    (cosine to torch, min over 60 news texts): per-tensor weights 0.976; per-channel 0.991;
    per-channel with 7-bit weights (``reduce_range``, which avoids the int16 saturation of AVX2's
    u8s8 kernels) 0.994, at the same speed (15.2 passages per CPU-second either way)."""

    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = True


QUANTIZATION = Quantization()


class OnnxExport(msgspec.Struct, frozen=True, kw_only=True):
    """Contents of ``onnx/poshuk-onnx.json``: what the cached export was built from and how."""

    format: int
    weights_sha256: str
    opset: int
    quantization: Quantization
    onnxruntime_version: str
    onnx_version: str
    torch_version: str
    build_seconds: float
    created_at: datetime


@dataclass(frozen=True)
class ModelLayout:
    """What a sentence-transformers folder says around its transformer (read without torch)."""

    transformer_dir: Path
    max_seq_length: int
    pad_id: int
    query_prompt: str
    passage_prompt: str


def _read_json(path: Path, *, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None


def _read_object(path: Path) -> dict[str, Any]:
    data = _read_json(path, default={})
    if not isinstance(data, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    return data


def read_layout(folder: Path) -> ModelLayout:
    """The transformer folder, sequence limit and prompts of the model at ``folder``.

    Raises ``ModelError`` for pipelines the ONNX encoder does not reproduce (anything but a
    transformer, mean pooling and normalisation).
    """
    modules = _read_json(folder / "modules.json", default=[])
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ModelError(f"{folder / 'modules.json'} is not a list of modules")
    transformer_dir = folder
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = folder / str(module.get("path", ""))
        if kind == "Transformer":
            transformer_dir = path
        elif kind == "Pooling":
            pooling = _read_object(path / "config.json")
            modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
            if modes != ["pooling_mode_mean_tokens"]:
                raise ModelError(f"the ONNX encoder supports mean pooling only; {folder} uses {modes}")
        elif kind != "Normalize":  # the encoder always normalises
            raise ModelError(f"the ONNX encoder cannot run the {kind} module of {folder}", hint="use encoder = torch")
    if not (transformer_dir / "tokenizer.json").is_file():
        raise ModelError(f"{transformer_dir} has no tokenizer.json, which the ONNX encoder needs")
    config = _read_object(transformer_dir / "config.json")
    st_config = _read_object(transformer_dir / "sentence_bert_config.json")
    limits = [int(st_config.get("max_seq_length") or 512), int(config.get("max_position_embeddings") or 512)]
    prompts = _read_object(folder / "config_sentence_transformers.json").get("prompts") or {}
    return ModelLayout(
        transformer_dir=transformer_dir,
        max_seq_length=min(limits),
        pad_id=int(config.get("pad_token_id") or 0),
        query_prompt=str(prompts.get("query") or ""),
        passage_prompt=str(prompts.get("passage") or ""),
    )


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Tracer warnings and the quantizer's root-logger advice are noise for our fixed graph.

    A ``NullHandler`` keeps ``logging.warning`` from calling ``basicConfig`` on the app's behalf.
    """
    root = logging.getLogger()
    null = logging.NullHandler()
    drop = logging.Filter("poshuk.nothing")  # passes no record logged on the root logger
    root.addHandler(null)
    root.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(null)


def export_onnx(model_folder: Path, out_dir: Path) -> Path:
    """Write ``model.onnx`` (fp32) and ``model-int8.onnx`` for the model at ``model_folder``
    into ``out_dir``; return the int8 path. Needs torch, transformers and onnx.

    Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` and the output
    ``last_hidden_state`` have dynamic batch and sequence axes.
    """
    layout = read_layout(model_folder)
    single_fp32, single_int8 = out_dir / "traced.onnx", out_dir / "quantized.onnx"
    with _quiet_export():
        _export(layout, single_fp32, single_int8)
    save_with_external_weights(single_fp32, out_dir / FP32_FILE)
    save_with_external_weights(single_int8, out_dir / INT8_FILE)
    return out_dir / INT8_FILE


def save_with_external_weights(source: Path, target: Path) -> None:
    """Rewrite the one-file model ``source`` as ``target`` plus ``target.data``, then delete ``source``.

    Tensors of 64 KiB or more start at 64 KiB-aligned offsets, which is what lets onnxruntime
    map them from the file rather than read them into its own memory.
    """
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(source))
    offset = 0
    for tensor in model.graph.initializer:
        size = len(tensor.raw_data)
        if size < _EXTERNAL_MIN_BYTES:
            continue
        if size >= _ALIGN:
            offset = -(-offset // _ALIGN) * _ALIGN
        set_external_data(tensor, target.name + DATA_SUFFIX, offset, size)
        offset += size
    onnx.save_model(model, str(target))
    source.unlink()


def _export(layout: ModelLayout, fp32: Path, int8: Path) -> None:
    try:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
    except ImportError as exc:
        raise ModelError(
            f"building the ONNX export needs torch, transformers, onnx and onnxruntime ({exc})",
            hint="build it where poshuk is fully installed (`poshuk model install`) and copy the model folder",
        ) from None

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    try:  # eager attention traces to the plain MatMul/Softmax graph that ORT fuses and quantizes
        model = AutoModel.from_pretrained(
            str(layout.transformer_dir), local_files_only=True, attn_implementation="eager", dtype=torch.float32
        ).eval()
    except Exception as exc:  # transformers raises many unrelated types here
        raise ModelError(f"cannot load the transformer in {layout.transformer_dir}: {exc}") from exc
    input_ids = torch.tensor([[0, 100, 200, 2], [0, 300, 2, layout.pad_id]], dtype=torch.long)
    attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    with torch.inference_mode():
        torch.onnx.export(
            LastHiddenState(model),
            (input_ids, attention_mask, torch.zeros_like(input_ids)),
            str(fp32),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)},
            do_constant_folding=True,
        )
    quantize_dynamic(
        fp32,
        int8,
        per_channel=QUANTIZATION.per_channel,
        reduce_range=QUANTIZATION.reduce_range,
        weight_type=getattr(QuantType, QUANTIZATION.weight_type),
    )


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def read_export(folder: Path) -> OnnxExport | None:
    """The record of the export cached in ``<model folder>/onnx``, or None if there is none usable."""
    export_dir = folder / ONNX_DIR
    try:
        record = msgspec.json.decode((export_dir / EXPORT_RECORD).read_bytes(), type=OnnxExport)
    except (OSError, msgspec.DecodeError):
        return None
    if not all((export_dir / name).is_file() for name in (FP32_FILE, INT8_FILE)):
        return None
    return record


def _is_current(record: OnnxExport | None, weights_sha256: str) -> bool:
    return (
        record is not None
        and record.format == EXPORT_FORMAT
        and record.weights_sha256 == weights_sha256
        and record.quantization == QUANTIZATION
    )


def ensure_onnx(
    folder: Path,
    *,
    weights_sha256: str,
    exporter: Callable[[Path, Path], Path] = export_onnx,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Return ``folder/onnx``, building it first unless it holds an export of these weights.

    The export is built in a temp folder beside it and renamed into place, so ``onnx/`` never
    holds half an export. Builds take a lock (``.onnx.lock``): a second process, e.g. another
    service worker, waits for the first and then uses its export.
    """
    say = progress or (lambda _message: None)
    final = folder / ONNX_DIR
    if _is_current(read_export(folder), weights_sha256):
        return final
    try:
        lock = (folder / f".{ONNX_DIR}.lock").open("a")
    except OSError as exc:
        raise ModelError(
            f"cannot write the ONNX export beside the model in {folder}: {exc}",
            hint="run `poshuk model install` as the folder's owner once, or set POSHUK_ENCODER=torch",
        ) from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _is_current(read_export(folder), weights_sha256):  # built while we waited
            return final
        if final.exists() and not (final / EXPORT_RECORD).exists():  # e.g. shipped with a Hugging Face model
            raise ModelError(
                f"{final} exists but was not built by poshuk; it is left alone",
                hint="move it away so poshuk can build its export there, or set POSHUK_ENCODER=torch",
            )
        say(f"exporting {folder.name} to ONNX (fp32 and int8) in {final}")
        record = _build(folder, weights_sha256, exporter)
    say(f"ONNX export ready in {final} ({record.build_seconds:.0f} s)")
    return final


def _build(folder: Path, weights_sha256: str, exporter: Callable[[Path, Path], Path]) -> OnnxExport:
    final = folder / ONNX_DIR
    try:
        _remove_stale_builds(folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{ONNX_DIR}.building-", dir=folder))
    except OSError as exc:
        raise ModelError(f"cannot write the ONNX export beside the model in {folder}: {exc}") from exc
    try:
        start = time.perf_counter()
        exporter(folder, tmp)
        record = OnnxExport(
            format=EXPORT_FORMAT,
            weights_sha256=weights_sha256,
            opset=OPSET,
            quantization=QUANTIZATION,
            onnxruntime_version=_version("onnxruntime"),
            onnx_version=_version("onnx"),
            torch_version=_version("torch"),
            build_seconds=round(time.perf_counter() - start, 1),
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        (tmp / EXPORT_RECORD).write_bytes(msgspec.json.format(msgspec.json.encode(record)) + b"\n")
        tmp.chmod(0o755)  # mkdtemp makes 0700; services often run as another user
        for path in tmp.iterdir():
            path.chmod(0o644)
        publish_dir(tmp, final)
    except OSError as exc:  # e.g. a full disk
        raise ModelError(f"cannot build the ONNX export in {folder}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def _remove_stale_builds(folder: Path) -> None:
    cutoff = time.time() - _STALE_BUILD_SECONDS
    for pattern in (f".{ONNX_DIR}.building-*", f".{ONNX_DIR}.old-*"):
        for path in folder.glob(pattern):
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime < cutoff:
                    shutil.rmtree(path)
