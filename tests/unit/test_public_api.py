"""The library's public surface: everything in ``__all__`` exists and nothing is missing."""

from __future__ import annotations

import poshuk
from poshuk.errors import PoshukError


def test_all_names_exist_and_are_sorted() -> None:
    assert sorted(poshuk.__all__) == poshuk.__all__
    for name in poshuk.__all__:
        assert hasattr(poshuk, name), name


def test_public_members_are_exported() -> None:
    public = {
        name
        for name, value in vars(poshuk).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("poshuk.")
    }
    assert public == set(poshuk.__all__)


def test_every_exported_error_belongs_to_the_tree() -> None:
    errors = [getattr(poshuk, n) for n in poshuk.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, PoshukError) for e in errors)


def test_one_line_error_with_hint() -> None:
    err = PoshukError("index\nmissing", hint="run `poshuk index`")
    assert err.one_line() == "index missing (hint: run `poshuk index`)"
