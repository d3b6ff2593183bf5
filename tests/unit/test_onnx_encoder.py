"""The ONNX encoder without the real model: a tiny word-level tokenizer and a one-Gather ONNX graph.

The fake "transformer" maps each token to a fixed row of an embedding table (zero for padding),
so the expected sentence vector is the plain mean of those rows: this checks tokenization with
prompts, truncation, padding, length-sorted batching and pooling end to end in milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from poshuk.encoder import HashEncoder, ModelIdentity, check_backend
from poshuk.errors import ConfigError, ModelError, ModelMismatchError
from poshuk.models import folder_weights_sha256, load_encoder
from poshuk.onnx_encoder import OnnxEncoder, mean_pool, physical_cores
from poshuk.onnx_export import (
    EXPORT_RECORD,
    FP32_FILE,
    INT8_FILE,
    ONNX_DIR,
    OnnxExport,
    ensure_onnx,
    read_layout,
    save_with_external_weights,
)
from poshuk.settings import load_settings

WORDS = ["query", ":", "passage", "київ", "kyiv", "йод", "news", "a", "b", "c", "d", "e", "f", "g"]
VOCAB = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3} | {w: i + 4 for i, w in enumerate(WORDS)}
DIM = 4
MAX_LEN = 8
EMBEDDINGS = np.random.default_rng(7).normal(size=(len(VOCAB), DIM)).astype(np.float32)


def _graph() -> onnx.ModelProto:
    """last_hidden_state = embeddings[input_ids] * attention_mask (+ a zero token-type term)."""
    dynamic = ["batch", "sequence"]
    nodes = [
        helper.make_node("Gather", ["embeddings", "input_ids"], ["words"]),
        helper.make_node("Gather", ["type_embeddings", "token_type_ids"], ["types"]),
        helper.make_node("Add", ["words", "types"], ["summed"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "last_axis"], ["mask_3d"]),
        helper.make_node("Mul", ["summed", "mask_3d"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fake-transformer",
        [helper.make_tensor_value_info(n, TensorProto.INT64, dynamic) for n in ("input_ids", "attention_mask")]
        + [helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, dynamic)],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*dynamic, DIM])],
        [
            numpy_helper.from_array(EMBEDDINGS, "embeddings"),
            numpy_helper.from_array(np.zeros((2, DIM), dtype=np.float32), "type_embeddings"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def fake_exporter(model_folder: Path, out_dir: Path) -> Path:
    """Stands in for ``export_onnx`` (which needs torch and a real transformer)."""
    read_layout(model_folder)
    for name in (FP32_FILE, INT8_FILE):
        onnx.save(_graph(), out_dir / name)
    return out_dir / INT8_FILE


def _make_model_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "1_Pooling/config.json": {"word_embedding_dimension": DIM, "pooling_mode_mean_tokens": True},
        "config.json": {"model_type": "bert", "pad_token_id": 1, "max_position_embeddings": MAX_LEN},
        "sentence_bert_config.json": {"max_seq_length": 512},
        "config_sentence_transformers.json": {"prompts": {"query": "query: ", "passage": "passage: "}},
    }
    for name, content in files.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(json.dumps(content))
    (folder / "model.safetensors").write_bytes(b"fake weights")
    return folder


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    return _make_model_folder(tmp_path / "fake-model")


@pytest.fixture
def built(model_folder: Path) -> Path:
    ensure_onnx(model_folder, weights_sha256="w1", exporter=fake_exporter)
    return model_folder


def expected(words: list[str]) -> np.ndarray:
    content = [VOCAB.get(w, 3) for w in words][: MAX_LEN - 2]  # room for <s> and </s>
    ids = [0, *content, 2]
    mean = EMBEDDINGS[ids].mean(axis=0)
    return mean / np.linalg.norm(mean)


# --- pure pieces ---------------------------------------------------------------------------------


def test_mean_pool_ignores_padding_and_normalises() -> None:
    hidden = np.array([[[1, 0], [3, 0], [100, 100]], [[0, 2], [5, 5], [7, 7]]], dtype=np.float32)
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.int64)
    pooled = mean_pool(hidden, mask)
    np.testing.assert_allclose(pooled, [[1.0, 0.0], [0.0, 1.0]], atol=1e-7)
    assert pooled.dtype == np.float32 and pooled.flags.c_contiguous


def test_mean_pool_of_an_all_padding_row_is_finite() -> None:
    pooled = mean_pool(np.ones((1, 2, 3), dtype=np.float32), np.zeros((1, 2), dtype=np.int64))
    assert np.isfinite(pooled).all()


def test_check_backend_passes_same_backend_or_when_allowed() -> None:
    check_backend("onnx-int8", "onnx-int8", allow=False)
    check_backend("sentence-transformers", "onnx-int8", allow=True)


def test_check_backend_refuses_another_backend_with_a_hint() -> None:
    with pytest.raises(ModelMismatchError) as info:
        check_backend("sentence-transformers", "onnx-int8", allow=False)
    hint = info.value.hint or ""
    assert "POSHUK_ENCODER=torch" in hint
    assert "POSHUK_ALLOW_BACKEND_MISMATCH=1" in hint and "--allow-backend-mismatch" in hint
    assert "onnx-int8" in info.value.message


def test_identity_compatibility_ignores_the_backend() -> None:
    torch_identity = HashEncoder().identity
    onnx_identity = msgspec.structs.replace(torch_identity, backend="onnx-int8")
    assert torch_identity.compatible_with(onnx_identity)
    other_weights = msgspec.structs.replace(onnx_identity, weights_sha256="0" * 64)
    assert not torch_identity.compatible_with(other_weights)


@pytest.mark.parametrize(("spin_wait", "expected"), [(True, "1"), (False, "0")])
def test_spin_wait_reaches_the_session(built: Path, spin_wait: bool, expected: str) -> None:
    encoder = OnnxEncoder(built, name="fake", weights_sha256="w1", spin_wait=spin_wait)
    options = encoder._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == expected


def test_a_serving_encoder_takes_the_service_spin_setting(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    monkeypatch.setattr("poshuk.onnx_encoder.OnnxEncoder.__init__", lambda self, *a, **kw: seen.append(kw["spin_wait"]))
    monkeypatch.setattr("poshuk.onnx_export.ensure_onnx", lambda *a, **kw: built / ONNX_DIR)
    settings = load_settings(env={"POSHUK_MODEL": str(built), "POSHUK_HOME": str(built.parent / "home")})
    load_encoder(settings)
    load_encoder(settings, serving=True)
    on = load_settings(env={"POSHUK_MODEL": str(built), "POSHUK_SERVICE_ENCODER_SPIN_WAIT": "true"})
    load_encoder(msgspec.structs.replace(on, home=settings.home), serving=True)
    assert seen == [True, False, True]


def test_physical_cores_is_a_sane_count() -> None:
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


def test_encoder_setting_defaults_to_onnx_fp32_and_is_validated() -> None:
    assert load_settings(env={}).encoder == "onnx-fp32"
    assert load_settings(env={}).allow_backend_mismatch is False
    settings = load_settings(env={"POSHUK_ENCODER": "torch", "POSHUK_ALLOW_BACKEND_MISMATCH": "1"})
    assert (settings.encoder, settings.allow_backend_mismatch) == ("torch", True)
    with pytest.raises(ConfigError):
        load_settings(env={"POSHUK_ENCODER": "onnx"})


# --- the model folder and the cached export ------------------------------------------------------


def test_layout_reads_prompts_and_the_smaller_sequence_limit(model_folder: Path) -> None:
    layout = read_layout(model_folder)
    assert (layout.query_prompt, layout.passage_prompt) == ("query: ", "passage: ")
    assert (layout.max_seq_length, layout.pad_id, layout.transformer_dir) == (MAX_LEN, 1, model_folder)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("1_Pooling/config.json", {"pooling_mode_cls_token": True}),
        (
            "modules.json",
            [
                {"path": "", "type": "sentence_transformers.models.Transformer"},
                {"path": "2_Dense", "type": "sentence_transformers.models.Dense"},
            ],
        ),
    ],
)
def test_layout_refuses_pipelines_it_cannot_reproduce(model_folder: Path, path: str, content: object) -> None:
    (model_folder / path).write_text(json.dumps(content))
    with pytest.raises(ModelError):
        read_layout(model_folder)


def test_ensure_builds_once_and_records_what_it_built(model_folder: Path) -> None:
    calls: list[Path] = []

    def counting(folder: Path, out: Path) -> Path:
        calls.append(out)
        return fake_exporter(folder, out)

    export_dir = ensure_onnx(model_folder, weights_sha256="w1", exporter=counting)
    assert export_dir == model_folder / ONNX_DIR
    assert sorted(p.name for p in export_dir.iterdir()) == sorted([EXPORT_RECORD, FP32_FILE, INT8_FILE])
    record = msgspec.json.decode((export_dir / EXPORT_RECORD).read_bytes(), type=OnnxExport)
    assert record.weights_sha256 == "w1" and record.opset >= 17 and record.onnxruntime_version
    assert record.quantization.weight_type == "QInt8"
    assert export_dir.stat().st_mode & 0o777 == 0o755
    assert (export_dir / INT8_FILE).stat().st_mode & 0o777 == 0o644

    ensure_onnx(model_folder, weights_sha256="w1", exporter=counting)
    assert len(calls) == 1, "a current export is reused"
    ensure_onnx(model_folder, weights_sha256="w2", exporter=counting)
    assert len(calls) == 2, "new weights rebuild it"
    assert _hidden(model_folder) == [".onnx.lock"], "no temp folders left"


def test_weights_move_to_an_aligned_data_file_and_give_the_same_output(tmp_path: Path) -> None:
    """Big tensors land at 64 KiB-aligned offsets of ``<model>.data`` (what lets onnxruntime map them)."""
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    big = rng.normal(size=(300, 64)).astype(np.float32)  # 76,800 bytes: external, aligned
    odd = rng.normal(size=(70, 5)).astype(np.float32)  # 1,400 bytes: external, unaligned
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["odd", "small_ids"], ["small_rows"]),
            helper.make_node("Gather", ["big", "ids"], ["rows"]),
            helper.make_node("ReduceSum", ["small_rows"], ["total"], keepdims=0),
            helper.make_node("Add", ["rows", "total"], ["out"]),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 64])],
        [
            numpy_helper.from_array(odd, "odd"),
            numpy_helper.from_array(big, "big"),
            numpy_helper.from_array(np.array([1, 69], dtype=np.int64), "small_ids"),
        ],
    )
    single = tmp_path / "single.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), single)
    ids = np.array([0, 5, 299], dtype=np.int64)
    expected = ort.InferenceSession(str(single), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]

    target = tmp_path / "model.onnx"
    save_with_external_weights(single, target)
    assert not single.exists()
    stored = onnx.load(str(target), load_external_data=False)
    places = {t.name: {e.key: e.value for e in t.external_data} for t in stored.graph.initializer}
    assert places["big"]["location"] == places["odd"]["location"] == "model.onnx.data"
    assert int(places["big"]["offset"]) % (64 * 1024) == 0 and int(places["big"]["offset"]) > 0
    assert target.stat().st_size < 1024, "the graph file holds no weights"
    got = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    np.testing.assert_array_equal(got, expected)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_concurrent_builds_wait_for_the_first(model_folder: Path) -> None:
    calls: list[Path] = []

    def slow(folder: Path, out: Path) -> Path:
        calls.append(out)
        time.sleep(0.3)
        return fake_exporter(folder, out)

    with ThreadPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(lambda _: ensure_onnx(model_folder, weights_sha256="w1", exporter=slow), range(3)))
    assert done == [model_folder / ONNX_DIR] * 3
    assert len(calls) == 1


def test_a_failed_build_leaves_nothing_behind(model_folder: Path) -> None:
    def broken(folder: Path, out: Path) -> Path:
        (out / FP32_FILE).write_bytes(b"half")
        raise ModelError("export failed")

    with pytest.raises(ModelError, match="export failed"):
        ensure_onnx(model_folder, weights_sha256="w1", exporter=broken)
    assert not (model_folder / ONNX_DIR).exists()
    assert _hidden(model_folder) == [".onnx.lock"]


def test_a_foreign_onnx_folder_is_left_alone(model_folder: Path) -> None:
    (model_folder / ONNX_DIR).mkdir()
    (model_folder / ONNX_DIR / "model.onnx").write_bytes(b"shipped with the model")
    with pytest.raises(ModelError, match="not built by poshuk"):
        ensure_onnx(model_folder, weights_sha256="w1", exporter=fake_exporter)
    assert (model_folder / ONNX_DIR / "model.onnx").read_bytes() == b"shipped with the model"


def test_encoder_needs_a_current_export(model_folder: Path) -> None:
    with pytest.raises(ModelError, match="no ONNX export"):
        OnnxEncoder(model_folder, name="fake", weights_sha256="w1")
    ensure_onnx(model_folder, weights_sha256="w1", exporter=fake_exporter)
    with pytest.raises(ModelError, match="other weights"):
        OnnxEncoder(model_folder, name="fake", weights_sha256="w2")


# --- encoding ------------------------------------------------------------------------------------


def test_identity_comes_from_the_folder(built: Path) -> None:
    identity = OnnxEncoder(built, name="fake", weights_sha256="w1", variant="fp32", threads=1).identity
    assert identity == ModelIdentity(
        name="fake",
        weights_sha256="w1",
        dimension=DIM,
        query_prompt="query: ",
        passage_prompt="passage: ",
        backend="onnx-fp32",
    )


def test_vectors_are_prompted_mean_pooled_and_keep_input_order(built: Path) -> None:
    encoder = OnnxEncoder(built, name="fake", weights_sha256="w1", threads=1, batch_size=2)
    texts = ["a", "b c d e", "київ", "f g", "news a b"]  # lengths differ: batches are sorted by length
    vectors = encoder.encode_passages(texts)
    assert vectors.shape == (5, DIM) and vectors.dtype == np.float32
    for row, text in zip(vectors, texts, strict=True):
        np.testing.assert_allclose(row, expected(["passage", ":", *text.split()]), atol=1e-6)
    queries = encoder.encode_queries(["kyiv news"])
    np.testing.assert_allclose(queries[0], expected(["query", ":", "kyiv", "news"]), atol=1e-6)


def test_long_texts_are_truncated_like_transformers(built: Path) -> None:
    encoder = OnnxEncoder(built, name="fake", weights_sha256="w1", threads=1)
    text = "a b c d e f g a b c"
    vector = encoder.encode_passages([text])[0]
    kept = ["passage", ":", "a", "b", "c", "d"]  # MAX_LEN 8 = <s> + 6 tokens + </s>
    np.testing.assert_allclose(vector, expected(kept), atol=1e-6)
    assert encoder.count_tokens(text) == 12, "counting does not truncate"


def test_text_is_nfc_normalised_first(built: Path) -> None:
    encoder = OnnxEncoder(built, name="fake", weights_sha256="w1", threads=1)
    decomposed = unicodedata.normalize("NFD", "йод")
    assert decomposed != "йод"
    np.testing.assert_allclose(encoder.encode_passages([decomposed]), encoder.encode_passages(["йод"]))
    assert encoder.count_tokens(decomposed) == 3


def test_no_texts_give_an_empty_matrix(built: Path) -> None:
    encoder = OnnxEncoder(built, name="fake", weights_sha256="w1", threads=1)
    assert encoder.encode_queries([]).shape == (0, DIM)


def test_load_encoder_dispatches_on_the_encoder_setting(built: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    weights = folder_weights_sha256(built, home)
    ensure_onnx(built, weights_sha256=weights, exporter=fake_exporter)
    env = {"POSHUK_HOME": str(home), "POSHUK_MODEL": str(built), "POSHUK_ENCODER": "onnx-int8"}
    encoder = load_encoder(load_settings(env=env))
    assert isinstance(encoder, OnnxEncoder)
    assert (encoder.identity.backend, encoder.identity.weights_sha256) == ("onnx-int8", weights)
    fp32 = load_encoder(load_settings(env=env | {"POSHUK_ENCODER": "onnx-fp32"}))
    assert fp32.identity.backend == "onnx-fp32"
    with pytest.raises(ConfigError, match="CPU"):
        load_encoder(load_settings(env=env | {"POSHUK_DEVICE": "cuda"}))


def test_serving_does_not_import_torch(built: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from poshuk.onnx_encoder import OnnxEncoder\n"
        f"encoder = OnnxEncoder(Path({str(built)!r}), name='fake', weights_sha256='w1', threads=1)\n"
        "encoder.encode_queries(['kyiv news'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
