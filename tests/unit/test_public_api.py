"""The library's public surface: everything in ``__all__`` exists, and nothing public is missing.

"Public" is found, not listed: every error in the tree, and every Poshuk type that a public
name's signature or fields use (``Searcher.document`` returns ``StoredDocument``, so a tool
that calls it needs that name too). A type deliberately kept internal is listed in
``INTERNAL`` with the reason; a new one must be exported or listed there.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from typing import Any

import msgspec

import poshuk
from poshuk import errors
from poshuk.errors import PoshukError

# Poshuk types public signatures mention but the library does not promise to keep.
INTERNAL = {
    "poshuk.index.core.Index": "the open index version; Searcher.index hands it to the service's writers",
    "poshuk.index.layout.Manifest": "the index folder's bookkeeping, read through Searcher.manifest",
    "poshuk.fusion.FusionSettings": "a tuning knob of Searcher, set by benchmarks; its fields may change",
    "poshuk.search.IndexReader": "what Searcher reads (one Index, or a ShardedIndex); Searcher.open picks it",
    "poshuk.index.core.IndexWrites": "where Searcher.writer sends writes (one Index, or a sharded archive's writer)",
}


def _exported() -> dict[str, Any]:
    return {name: getattr(poshuk, name) for name in poshuk.__all__}  # loads the lazy names too


def test_all_names_exist_and_are_sorted() -> None:
    assert sorted(poshuk.__all__) == poshuk.__all__
    for name in poshuk.__all__:
        assert hasattr(poshuk, name), name


def test_public_members_are_exported() -> None:
    _exported()
    public = {
        name
        for name, value in vars(poshuk).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("poshuk.")
    }
    assert public == set(poshuk.__all__)


def test_every_error_of_the_tree_is_exported() -> None:
    tree = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, PoshukError) and value.__module__ == errors.__name__
    }
    assert tree - set(poshuk.__all__) == set()


def _poshuk_types(hint: Any, out: set[type]) -> None:
    if typing.get_origin(hint) is typing.Annotated:
        _poshuk_types(typing.get_args(hint)[0], out)
    elif typing.get_origin(hint) is not None:  # list[X], X | None, Literal[...] ...
        for arg in typing.get_args(hint):
            _poshuk_types(arg, out)
    elif isinstance(hint, type) and hint.__module__.startswith("poshuk."):
        out.add(hint)


def _signatures(value: Any) -> list[tuple[str, Any]]:
    """(where, annotated object) for a public function, or a class's fields and public methods."""
    if not inspect.isclass(value):
        return [("", value)] if callable(value) else []
    found: list[tuple[str, Any]] = [("fields", value)] if issubclass(value, msgspec.Struct) else []
    for member, attr in vars(value).items():
        if member.startswith("_") and member != "__init__":
            continue
        if isinstance(attr, property):
            attr = attr.fget
        if isinstance(attr, classmethod | staticmethod):
            attr = attr.__func__
        if callable(attr):
            found.append((member, attr))
    return found


def test_types_in_public_signatures_are_exported() -> None:
    missing: dict[str, list[str]] = {}
    for name, value in _exported().items():
        for where, annotated in _signatures(value):
            used: set[type] = set()
            for hint in typing.get_type_hints(annotated, include_extras=True).values():
                _poshuk_types(hint, used)
            for kind in used:
                qualified = f"{kind.__module__}.{kind.__name__}"
                if getattr(poshuk, kind.__name__, None) is not kind and qualified not in INTERNAL:
                    missing.setdefault(qualified, []).append(f"{name}.{where}".rstrip("."))
    assert missing == {}, "public signatures use types poshuk does not export (export them or list them in INTERNAL)"


def test_every_exported_error_belongs_to_the_tree() -> None:
    errors_ = [getattr(poshuk, n) for n in poshuk.__all__ if n.endswith("Error")]
    assert errors_ and all(issubclass(e, PoshukError) for e in errors_)


def test_the_client_imports_no_faiss_numpy_or_store() -> None:
    """A tool that only talks to a service over HTTP loads neither FAISS, numpy, SQLite nor a model runtime."""
    heavy = ["faiss", "numpy", "sqlite3", "_sqlite3", "poshuk.index", "poshuk.search", "onnxruntime", "litestar"]
    code = (
        "import sys, poshuk; poshuk.Client; poshuk.AsyncClient; poshuk.SearchResult; poshuk.WriteResult; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
    # and the lazy names still load on demand
    code = "import sys, poshuk; poshuk.Searcher; print('faiss' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "True"


def test_unknown_names_raise_attribute_error() -> None:
    assert not hasattr(poshuk, "NoSuchThing")


def test_one_line_error_with_hint() -> None:
    err = PoshukError("index\nmissing", hint="run `poshuk index`")
    assert err.one_line() == "index missing (hint: run `poshuk index`)"
