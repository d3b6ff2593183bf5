"""Encoding on Ray Data: ``poshuk index --ray`` (issue 12).

Encoding is what outgrows one machine first (~40 passages/s on 2 CPU cores: three days for
10M passages), so that is the step Ray runs. The driver reads and chunks as in a local run
(bad records reported the same way) and ships groups of chunked articles to an autoscaling
pool of encoder actors (``--encoder-actors``, GPU-ready with ``--gpus-per-actor``); the groups
come back in input order and the one writer files them as in a local run. So a ``--ray``
index is the index a local run builds: same row ids, story clusters and vectors (the actors
run the same ``poshuk.ingest`` steps), and a ``--shards`` split of it answers as one index.
A lost worker's groups are encoded again by Ray Data; a group is written once, when it
comes back, so nothing is lost or written twice.

Ray is the ``ray`` extra: a single-node install never imports this module's Ray parts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import msgspec
import numpy as np

from indexer.pipeline import Group, group_passages
from poshuk.analysis import Analyzer, LexicalSettings
from poshuk.documents import Article, Passage
from poshuk.errors import ConfigError
from poshuk.index import Upsert
from poshuk.ingest import encode_step, to_upserts
from poshuk.settings import Settings

RAY_HINT = "install the ray extra: pip install 'poshuk[ray]'"
LOCAL = "local"  # `--ray local`: start Ray on this machine for the run


class RayOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how wide ``poshuk index --ray`` encodes."""

    address: str  # "local", "auto" (inside `ray job submit`) or a cluster address (ray://host:10001, host:6379)
    encoder_actors: int = 2  # the most encoder actors at once (the pool starts at one and grows)
    cpus_per_actor: float = 1.0  # also the ONNX encoder's threads in each actor
    gpus_per_actor: float = 0.0

    def checked(self) -> RayOptions:
        """The options, or a ``ConfigError`` naming the first one out of range."""
        if not self.address.strip():
            raise ConfigError("--ray needs an address: local, auto, or the cluster's address")
        if not 1 <= self.encoder_actors <= 1024:
            raise ConfigError(f"--encoder-actors must be between 1 and 1024, got {self.encoder_actors}")
        if not 0.0 < self.cpus_per_actor <= 256:
            raise ConfigError(f"--cpus-per-actor must be above 0 and at most 256, got {self.cpus_per_actor}")
        if not 0.0 <= self.gpus_per_actor <= 16:
            raise ConfigError(f"--gpus-per-actor must be between 0 and 16, got {self.gpus_per_actor}")
        return self


def require_ray() -> ModuleType:
    """The ``ray`` module, or a ``ConfigError`` that names the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError("--ray needs Ray, which this install lacks", hint=RAY_HINT) from None
    return ray


def check_device(options: RayOptions, settings: Settings) -> None:
    """GPU actors need the torch encoder on a GPU device; say so before anything starts."""
    if options.gpus_per_actor > 0 and (settings.encoder != "torch" or settings.device == "cpu"):
        raise ConfigError(
            "--gpus-per-actor needs the torch encoder on a GPU device",
            hint="set POSHUK_ENCODER=torch and POSHUK_DEVICE=cuda (the manifest then records the torch backend)",
        )


class _Encoded(msgspec.Struct, frozen=True):
    """What an actor sends back for one article: the bytes of its vectors and MinHash, its terms.
    Groups travel as msgpack of plain structs both ways, never pickle: nothing that can run code is
    ever loaded (``tests/unit/test_properties.py``)."""

    vectors: bytes
    dimension: int
    terms: list[str] | None
    signature: bytes | None


def _upsert(article: Article, passages: list[Passage], encoded: _Encoded) -> Upsert:
    vectors = np.frombuffer(encoded.vectors, dtype=np.float32).reshape(len(passages), encoded.dimension)
    signature = None if encoded.signature is None else np.frombuffer(encoded.signature, dtype=np.uint64)
    return Upsert(article, passages, vectors, encoded.terms, signature)


class EncodeGroups:
    """A Ray Data actor: loads the encoder once, then encodes groups of chunked articles with
    ``poshuk.ingest``'s steps, as a local run does."""

    def __init__(self, settings: Settings, lexical: LexicalSettings, threads: int) -> None:
        from poshuk.models import load_encoder

        self.encoder = load_encoder(settings, threads=threads)
        self.analyzer = Analyzer(lexical)

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, list[Any]]:
        out: list[bytes] = []
        dimension = self.encoder.identity.dimension
        for payload in batch["group"]:
            group = msgspec.msgpack.decode(payload, type=Group)
            upserts = to_upserts(group, encode_step(self.encoder, group_passages(group)), self.analyzer)
            encoded = [
                _Encoded(
                    vectors=np.ascontiguousarray(u.vectors, dtype=np.float32).tobytes(),
                    dimension=dimension,
                    terms=None if u.terms is None else list(u.terms),
                    signature=None if u.signature is None else u.signature.tobytes(),
                )
                for u in upserts
            ]
            out.append(msgspec.msgpack.encode(encoded))
        return {"seq": list(batch["seq"]), "upserts": out}


@contextlib.contextmanager
def connected(options: RayOptions) -> Iterator[ModuleType]:
    """Ray, joined at ``options.address`` (or started here for ``local``) for the block;
    a Ray started here is shut down after it."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=LOCAL if options.address == LOCAL else options.address,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot join Ray at {options.address!r}: {exc}") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def encode_on_ray(
    ray: ModuleType,
    groups: Sequence[Group],
    settings: Settings,
    lexical: LexicalSettings,
    options: RayOptions,
) -> Iterator[list[Upsert]]:
    """Each group's upserts, in the groups' order, encoded by the actor pool."""
    if not groups:
        return
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the writer files groups in input order
    context.enable_progress_bars = False  # the run's own bar counts the groups written
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our own bar and report say what happened
    items = [{"seq": n, "group": msgspec.msgpack.encode(group)} for n, group in enumerate(groups)]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        EncodeGroups,
        fn_constructor_kwargs={
            "settings": settings,
            "lexical": lexical,
            "threads": max(1, int(options.cpus_per_actor)),
        },
        batch_size=1,
        # Autoscaling from one actor: a fixed-size pool hung forever once a lost node left it too big to place.
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=options.encoder_actors),
        num_cpus=options.cpus_per_actor,
        num_gpus=options.gpus_per_actor,
    )
    expected = 0
    for row in dataset.iter_rows():
        if int(row["seq"]) != expected:  # preserve_order guarantees it; a gap would lose articles
            raise RuntimeError(f"Ray returned group {row['seq']} where {expected} was due")
        group = groups[expected]
        encoded = msgspec.msgpack.decode(row["upserts"], type=list[_Encoded])
        expected += 1
        yield [_upsert(article, passages, e) for (article, passages), e in zip(group, encoded, strict=True)]
    if expected != len(groups):
        raise RuntimeError(f"Ray returned {expected} of {len(groups)} groups")
