"""Settings: one declaration, documented, loaded from TOML and POSHUK_* variables."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from poshuk.errors import ConfigError
from poshuk.settings import Settings, iter_setting_docs, load_settings, settings_table

REPO = Path(__file__).resolve().parents[2]


def test_defaults_without_environment() -> None:
    settings = load_settings(env={})
    assert settings.model == "multilingual-e5-small"
    assert settings.service.port == 8000
    assert settings.home_path == Path("~/.cache/poshuk").expanduser()


def test_every_setting_is_documented_and_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name, env, text, _default in iter_setting_docs():
        assert text, f"setting {name} has no description"
        assert f"`{env}`" in readme, f"README does not document {env}"
    assert settings_table() in readme, "README settings table is out of date: paste `poshuk settings --table`"


def test_environment_overrides_toml_and_overrides_win(tmp_path: Path) -> None:
    config = tmp_path / "poshuk.toml"
    config.write_text('model = "from-file"\n[service]\nport = 9001\nmax_k = 50\n', encoding="utf-8")
    env = {"POSHUK_SERVICE_PORT": "9002", "POSHUK_CHUNKING_MAX_TOKENS": "128"}
    settings = load_settings(config, env=env, overrides={"model": "from-flag"})
    assert settings.model == "from-flag"
    assert settings.service.port == 9002
    assert settings.service.max_k == 50
    assert settings.chunking.max_tokens == 128


def test_settings_are_frozen() -> None:
    settings = load_settings(env={})
    with pytest.raises(AttributeError):
        settings.model = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSHUK_SERVICE_PORT": "eighty"}, "port"),
        ({"POSHUK_SERVICE_PORT": "70000"}, "port"),
        ({"POSHUK_BATCH_SIZE": "0"}, "batch_size"),
        ({"POSHUK_SERVICE_LOG_LEVEL": "loud"}, "log_level"),
    ],
)
def test_bad_values_are_config_errors_naming_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


def test_unknown_key_in_toml_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "poshuk.toml"
    config.write_text("modle = 'typo'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="modle"):
        load_settings(config, env={})


@pytest.mark.parametrize("content", [b"model = [", b"\xff\xfe"])
def test_broken_settings_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    config = tmp_path / "poshuk.toml"
    config.write_bytes(content)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config, env={})


def test_missing_settings_file_named_by_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(env={"POSHUK_CONFIG": str(tmp_path / "absent.toml")})


def test_settings_round_trip_through_json() -> None:
    settings = load_settings(env={"POSHUK_MODEL": "/models/x"})
    assert msgspec.json.decode(msgspec.json.encode(settings), type=Settings) == settings
