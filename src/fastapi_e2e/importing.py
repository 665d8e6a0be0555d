"""Resolve the "package.module:attr.attr" import strings used in E2EConfig."""

from __future__ import annotations

import importlib
from typing import Any

from fastapi_e2e.errors import APP_IMPORT_RAISED, IMPORT_FAILED, ConfigError


def resolve(value: Any, field: str) -> Any:
    """Return ``value`` itself, or the object an import string names."""
    if not isinstance(value, str):
        return value
    module_name, sep, attrs = value.partition(":")
    if not sep or not module_name or not attrs:
        raise ConfigError(
            IMPORT_FAILED.format(
                field=field, value=value, cause="no ':' between module and attribute"
            )
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(IMPORT_FAILED.format(field=field, value=value, cause=exc)) from exc
    except Exception as exc:  # the app's own code failed while its module was imported
        raise ConfigError(
            APP_IMPORT_RAISED.format(
                field=field, value=value, module=module_name, cause=f"{type(exc).__name__}: {exc}"
            )
        ) from exc
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ConfigError(IMPORT_FAILED.format(field=field, value=value, cause=exc)) from exc
    return obj
