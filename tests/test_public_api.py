"""The curated public API: __all__ is sorted, complete and importable."""

from __future__ import annotations

import fastapi_e2e
from fastapi_e2e import errors


def test_all_is_sorted() -> None:
    assert fastapi_e2e.__all__ == sorted(fastapi_e2e.__all__)


def test_all_names_exist() -> None:
    for name in fastapi_e2e.__all__:
        assert getattr(fastapi_e2e, name) is not None


def test_every_exception_class_is_exported() -> None:
    exported = set(fastapi_e2e.__all__)
    for name, value in vars(errors).items():
        if isinstance(value, type) and issubclass(value, Exception):
            assert name in exported, f"{name} is missing from fastapi_e2e.__all__"


def test_typed_marker_ships() -> None:
    from importlib.resources import files

    assert files("fastapi_e2e").joinpath("py.typed").is_file()
