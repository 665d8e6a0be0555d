"""Register the wired dialects (``dialects.py``) with SQLAlchemy, without importing it.

Importing SQLAlchemy costs a pytest run that never uses the harness a few hundred
milliseconds, so the plugin does not: if SQLAlchemy's dialect registry is already
loaded the names are registered now, otherwise right after it loads (an import hook
that wraps the loading of ``sqlalchemy.dialects`` and is gone once it fired). Either
way the names are ours before the app makes its first engine.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

from fastapi_e2e import compat

NAMES = {
    "postgresql.asyncpg": "AsyncpgDialect",
    "postgresql.psycopg": "PsycopgDialect",
    "postgresql.psycopg_async": "AsyncPsycopgDialect",
}
_MODULE = "fastapi_e2e.database.dialects"
_REGISTRY = "sqlalchemy.dialects"

_users = 0
_applied = False


def register() -> None:
    """Counted: a pytester run inside a test registers and deregisters too."""
    global _users
    _users += 1
    if _users > 1:
        return
    if _REGISTRY in sys.modules:
        _apply()
    sys.meta_path.insert(0, _AfterLoading())


def deregister() -> None:
    global _users, _applied
    _users = max(_users - 1, 0)
    if _users:
        return
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterLoading)]
    if _applied:
        from sqlalchemy.dialects import registry

        for name in NAMES:
            compat.deregister_dialect(registry, name)
        _applied = False


def _apply() -> None:
    global _applied
    from sqlalchemy.dialects import registry

    for name, cls in NAMES.items():  # loaded lazily: registering imports nothing
        registry.register(name, _MODULE, cls)
    _applied = True


class _AfterLoading(importlib.abc.MetaPathFinder):
    """Finds ``sqlalchemy.dialects`` as the import system would, and registers the names
    each time that module runs (again after a reload, or a fresh import once
    ``sys.modules`` was cleaned). Installed from ``register()`` to ``deregister()``."""

    def __init__(self) -> None:
        self._finding = threading.local()

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _REGISTRY or getattr(self._finding, "active", False):
            return None
        self._finding.active = True  # the search below must not come back here
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        finally:
            self._finding.active = False
        if spec is None or spec.loader is None or isinstance(spec.loader, _RegisteringLoader):
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:  # resources, get_data, ...: the original's
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        if _users:
            _apply()


def ensure() -> None:
    """Register again if the registry in use lacks the names (another import hook ran
    first, the module was replaced): called before the harness imports the app."""
    if _users and _REGISTRY in sys.modules:
        _apply()  # three dictionary entries: cheaper than finding out whose they are
