"""Shared fixtures: a fake encoder for unit speed and the real model for integration."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from poshuk.encoder import Encoder, HashEncoder
from poshuk.errors import ModelError
from poshuk.settings import Settings, load_settings
from tests.support.processes import cli_env
from tests.support.repo import EXAMPLES


@pytest.fixture
def hash_encoder() -> HashEncoder:
    return HashEncoder(dimension=64)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the machine: model cache in tmp, environment ignored."""
    return load_settings(env={"POSHUK_HOME": str(tmp_path / "home")})


@pytest.fixture(scope="session")
def real_settings() -> Settings:
    """Settings that point at the provisioned default model (``make setup`` installs it)."""
    env = {k: v for k, v in os.environ.items() if k == "POSHUK_HOME"}
    return load_settings(env=env)


@pytest.fixture(scope="session")
def real_encoder(real_settings: Settings) -> Iterator[Encoder]:
    from poshuk.models import load_encoder

    try:
        encoder = load_encoder(real_settings)
    except ModelError as err:
        pytest.fail(f"the default model is not provisioned ({err.one_line()}); run `make setup`")
    yield encoder


@pytest.fixture(scope="session")
def torch_encoder(real_settings: Settings) -> Iterator[Encoder]:
    """The default model on the torch backend (sentence-transformers): the reference for the ONNX ones."""
    import msgspec

    from poshuk.models import load_encoder

    try:
        encoder = load_encoder(msgspec.structs.replace(real_settings, encoder="torch"))
    except ModelError as err:
        pytest.fail(f"the default model is not provisioned ({err.one_line()}); run `make setup`")
    yield encoder


@pytest.fixture(scope="session")
def example_index_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example articles indexed ONCE per session by the real CLI and model.

    Read-only: a test that serves or writes an index takes its own ``copy_index`` of it.
    """
    index_dir = tmp_path_factory.mktemp("examples") / "index"
    poshuk = str(Path(sys.executable).with_name("poshuk"))
    done = subprocess.run(
        [poshuk, "index", str(EXAMPLES), "--index", str(index_dir), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=900,
        env=cli_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "indexed 30 documents" in done.stdout
    return index_dir


@pytest.fixture
def hash_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI loads the HashEncoder instead of a real model, and reads no machine settings."""

    def load_encoder(settings: Settings) -> Encoder:
        return HashEncoder()

    monkeypatch.setattr("poshuk.models.load_encoder", load_encoder)
    monkeypatch.setattr("poshuk.commands.quiet_model_loading", lambda: None)
    for name in ("POSHUK_CONFIG", "POSHUK_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POSHUK_HOME", str(tmp_path / "home"))
