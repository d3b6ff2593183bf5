"""Shared fixtures: a fake encoder for unit speed and the real model for integration."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from poshuk.encoder import Encoder, HashEncoder
from poshuk.errors import ModelError
from poshuk.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "articles"


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
