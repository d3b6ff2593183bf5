"""API keys: who may write (and, if configured, read).

A key is 32 random bytes, URL-safe base64, prefixed ``psk_`` (``poshuk key new`` makes
one). The settings file holds only its SHA-256 hash, ``sha256:<64 hex>``: a key has 256
bits of entropy, so a fast hash cannot be brute-forced and a slow one (scrypt) would
only cost every request time. A presented key is hashed once and compared with every
stored hash with ``hmac.compare_digest`` (no early exit), so timing tells nothing.

Clients send the key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Write
and admin routes (``opt={"access": "write"}``) and saved searches (``"owner"``: a key sees
and deletes only the alerts it made) always need a valid key; with no keys
configured they are refused (403), never open. Reads under ``/v1/`` (and ``/metrics``) need one only when
``auth.read_requires_key`` is set. The key itself never reaches a log line or an error
detail: requests are told apart by the first 12 hex digits of the key's hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Reference, SecurityRequirement, SecurityScheme

from poshuk.settings import AuthSettings
from service.errors import ServiceProblem

KEY_PREFIX = "psk_"
HASH_PREFIX = "sha256:"
PRINCIPAL_SCOPE_KEY = "poshuk.principal"
WRITE = "write"
OWNER = "owner"  # a route over what a key made (its alerts): needs a key, reads included

CONFIGURE_HINT = (
    "no API keys are configured, so writes are refused: run `poshuk key new` and put the printed "
    '`keys = ["sha256:..."]` line under [auth] in the settings file (POSHUK_CONFIG), then restart the service'
)


class Principal(msgspec.Struct, frozen=True):
    """Who sent a request: a valid key (by its hash's prefix), an invalid key, or none."""

    presented: bool
    key_id: str | None = None

    @property
    def valid(self) -> bool:
        return self.key_id is not None


ANONYMOUS = Principal(presented=False)


def hash_key(key: str) -> str:
    """The settings-file form of ``key``: ``sha256:<hex>``."""
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh random key and its hash."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


class KeyRing:
    """The configured key hashes; tells a request's ``Principal`` from its headers."""

    def __init__(self, settings: AuthSettings) -> None:
        self.hashes = tuple(bytes.fromhex(h.removeprefix(HASH_PREFIX)) for h in settings.keys)
        self.read_requires_key = settings.read_requires_key

    @property
    def configured(self) -> bool:
        return bool(self.hashes)

    def identify(self, headers: Any) -> Principal:
        """``headers``: anything with ``.get(name)`` returning str or None (Litestar's, httpx's)."""
        key = _presented_key(headers)
        if key is None:
            return ANONYMOUS
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        match = False
        for stored in self.hashes:  # every hash, no early exit
            match |= hmac.compare_digest(digest, stored)
        return Principal(presented=True, key_id=digest.hex()[:12] if match else None)


def _presented_key(headers: Any) -> str | None:
    value = headers.get("x-api-key")
    if value:
        return str(value).strip() or None
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = str(auth).strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def principal_of(connection: ASGIConnection[Any, Any, Any, Any], ring: KeyRing) -> Principal:
    """The request's principal, worked out once per request (the rate limiter may already have)."""
    scope: Any = connection.scope
    found = scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(found, Principal):
        return found
    principal = ring.identify(connection.headers)
    scope[PRINCIPAL_SCOPE_KEY] = principal
    return principal


KEYED_READ_PATHS = frozenset({"/metrics"})
"""Outside ``/v1/``, what ``auth.read_requires_key`` also closes: counts and index size are reads too."""


def _needs_key(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler, ring: KeyRing) -> bool:
    if handler.opt.get("access") in (WRITE, OWNER):
        return True
    path = connection.url.path
    return ring.read_requires_key and (path.startswith("/v1/") or path in KEYED_READ_PATHS)


def require_key(connection: ASGIConnection[Any, Any, Any, Any], ring: KeyRing, *, what: str) -> Principal:
    """The principal if it holds a valid key; otherwise 403 (none configured / wrong key) or 401 (none given)."""
    if not ring.configured:
        raise ServiceProblem(403, "keys-not-configured", "Forbidden", f"{what}: {CONFIGURE_HINT}")
    principal = principal_of(connection, ring)
    if not principal.presented:
        raise ServiceProblem(
            401,
            "unauthorized",
            "API key required",
            f"{what} needs an API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            headers={"WWW-Authenticate": 'Bearer realm="poshuk"'},
        )
    if not principal.valid:
        raise ServiceProblem(403, "forbidden", "Forbidden", "the API key is not valid for this service")
    return principal


def make_guard(ring: KeyRing) -> Any:
    """A Litestar guard enforcing the rules in this module's docstring.

    A coroutine although it never awaits: Litestar runs a plain function guard in its thread pool,
    one hand-off to a thread and back for every request, for a check of microseconds."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if _needs_key(connection, handler, ring):
            access = handler.opt.get("access")
            what = "writing" if access == WRITE else "saved searches" if access == OWNER else "reading"
            require_key(connection, ring, what=what)

    return guard


def owner_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Who owns what this request makes: its key's id (the guard has checked the key first)."""
    scope: Any = connection.scope
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal) or principal.key_id is None:
        raise ServiceProblem(403, "forbidden", "Forbidden", "this needs a valid API key")
    return principal.key_id


SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(type="http", scheme="bearer", description="`Authorization: Bearer <key>`"),
    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header", description="The key."),
}
"""OpenAPI security schemes: either header carries the key."""

KEYED: list[SecurityRequirement] = [{"bearer": []}, {"apiKey": []}]
"""A route's OpenAPI ``security``: either scheme will do."""
