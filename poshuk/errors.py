"""Poshuk's one error tree.

Every failure the library reports on purpose is a ``PoshukError``; the CLI prints
``str(err)`` (plus ``err.hint``) as one line and the service maps the class to an
HTTP status in one handler. The tree::

    PoshukError
    ├── ConfigError              bad settings file / environment value / path
    ├── ModelError               model cannot be resolved, built, loaded or verified
    │   └── ModelMismatchError   index built with another model (or encoder backend)
    ├── InputError               a caller's input is unusable (HTTP 4xx family)
    │   ├── InvalidQueryError    empty / over-long query, k out of range
    │   └── BadRecordError       one source record cannot be read (file + line)
    ├── NotFoundError            an id that is not in the index
    ├── AuthError                the service refused the API key, or wanted one (HTTP 401/403)
    ├── ServiceUnavailableError  the service is loading, busy or rate-limiting (HTTP 429/503)
    └── IndexStoreError          the index folder is missing, locked or corrupt
        ├── IndexNotFoundError
        ├── IndexCorruptError
        ├── IndexBusyError       another process holds the write lock too long
        ├── StorageFullError     the disk (or SQLite's size limit) is full: nothing was written (HTTP 507)
        ├── IndexReadOnlyError   a write reached an index opened read-only
        ├── ShardUnavailableError  a shard of a sharded archive did not answer in time (HTTP 503)
        └── IndexRetiredError    a write reached a version that is no longer live
"""

from __future__ import annotations


class PoshukError(Exception):
    """Base of every error raised on purpose by Poshuk.

    ``hint`` is an optional next step for the person reading the message. Errors that
    ``poshuk.Client`` raises for an HTTP answer also carry its ``status`` and ``detail``.
    """

    status: int | None = None
    detail: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and its hint on one line, as the CLI prints it."""
        text = " ".join(self.message.split())
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(PoshukError):
    """A setting, environment variable or path given by the user is invalid."""


class ModelError(PoshukError):
    """The embedding model cannot be resolved, built, loaded or verified."""


class ModelMismatchError(ModelError):
    """The index was built with a different model than the one asked for."""


class InputError(PoshukError):
    """The caller's input is unusable; nothing was changed."""


class InvalidQueryError(InputError):
    """A search request is malformed: empty query, too long, k out of range."""


class BadRecordError(InputError):
    """One record of a source file cannot be turned into an article."""

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.reason = message


class NotFoundError(PoshukError):
    """An id (document, passage) that the index does not hold."""


class AuthError(PoshukError):
    """The service wants an API key, or refused the one given (HTTP 401/403)."""


class ServiceUnavailableError(PoshukError):
    """The service cannot answer now: loading, busy, timed out or rate-limiting (HTTP 429/503); retry later."""


class IndexStoreError(PoshukError):
    """The index folder cannot be used."""


class IndexNotFoundError(IndexStoreError):
    """No index exists at the given folder."""


class IndexCorruptError(IndexStoreError):
    """The index folder exists but its files are inconsistent or unreadable."""


class IndexBusyError(IndexStoreError):
    """Another writer held the index's write lock for longer than the busy timeout."""


class StorageFullError(IndexStoreError):
    """A write found no room on disk; it was rolled back whole and the index is as it was (HTTP 507)."""


class IndexReadOnlyError(IndexStoreError):
    """A write reached an index opened read-only (``poshuk serve --read-only``); nothing was written."""


class ShardUnavailableError(IndexStoreError):
    """A shard of a sharded archive did not answer in time (gone, restarting or overloaded): the search
    is refused whole (HTTP 503), never answered from the other shards alone."""


class IndexRetiredError(IndexStoreError):
    """A write reached an index version that a rebuild has replaced; nothing was written.

    The writer should open the live version (``Index.open``) and write there.
    """
