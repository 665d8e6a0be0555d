"""The test's own session (``db_session``): the app's session class and options, reading fresh.

The class and options come from, in order: ``E2EConfig.session_options`` (options
only); the ``async_sessionmaker`` named by ``E2EConfig.sessionmakers`` or used by
``E2EConfig.session_dependency``; the ``async_sessionmaker`` objects at module level
in the app's own modules (one bound to an app engine first); an ``AsyncSession``
subclass those modules import (SQLModel's, a custom one). Failing all of them, a
plain ``AsyncSession`` with ``expire_on_commit=False``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session

FRESH_READS_KEY = "fastapi_e2e.fresh_reads"
# Options of the app's sessionmaker that would detach a session from the test's connection.
_BINDING_OPTIONS = ("bind", "binds", "join_transaction_mode", "info")


class FreshReads:
    """Mixed into the app's session class for ``db_session``: reads show the database.

    A SELECT refreshes objects it already holds (``populate_existing``), and ``get()``
    queries even when the object is in the identity map: the app changes rows behind
    the test's back, and the test asserts on what the database holds.
    """

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("populate_existing", True)
        return await super().get(*args, **kwargs)  # type: ignore[misc]


def _refresh_on_select(state: ORMExecuteState) -> None:
    if state.is_select and state.session.info.get(FRESH_READS_KEY):
        state.update_execution_options(populate_existing=True)


_runs = 0


@contextmanager
def fresh_reads() -> Iterator[None]:
    """Install, for the run, the event that makes db_session's SELECTs refresh objects
    (counted: a pytester run inside a test must not remove the outer run's)."""
    global _runs
    if _runs == 0:
        event.listen(Session, "do_orm_execute", _refresh_on_select)
    _runs += 1
    try:
        yield
    finally:
        _runs -= 1
        if _runs == 0:
            event.remove(Session, "do_orm_execute", _refresh_on_select)


_classes: dict[type[AsyncSession], type[AsyncSession]] = {}


def _fresh_class(cls: type[AsyncSession]) -> type[AsyncSession]:
    if cls not in _classes:
        _classes[cls] = type(cls.__name__, (FreshReads, cls), {"__test__": False})
    return _classes[cls]


def session_options_of(maker: async_sessionmaker[Any]) -> dict[str, Any]:
    """The options of ``maker`` worth copying to the test's session."""
    return {k: v for k, v in maker.kw.items() if k not in _BINDING_OPTIONS}


def sessionmaker_used_by(dependency: Any) -> async_sessionmaker[Any] | None:
    """The module-level async_sessionmaker the dependency's code names, if any."""
    function = inspect.unwrap(dependency) if callable(dependency) else None
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    namespace = getattr(function, "__globals__", {})
    for name in code.co_names:
        value = namespace.get(name)
        if isinstance(value, async_sessionmaker):
            return value
    return None


def app_modules(app: Any, extra: Iterable[str] = ()) -> list[Any]:
    """The loaded modules of the app's own packages (those its routes are defined in)."""
    packages = {name.split(".")[0] for name in extra}
    for route in getattr(app, "routes", ()):
        module = getattr(getattr(route, "endpoint", None), "__module__", None)
        if module:
            packages.add(module.split(".")[0])
    packages -= {"fastapi", "starlette", "fastapi_e2e"}
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None and name.split(".")[0] in packages
    ]


def _found_in(modules: Iterable[Any]) -> tuple[list[async_sessionmaker[Any]], list[type]]:
    makers: list[async_sessionmaker[Any]] = []
    classes: list[type] = []
    for module in modules:
        for value in list(vars(module).values()):
            if isinstance(value, async_sessionmaker) and value not in makers:
                makers.append(value)
            elif (
                isinstance(value, type)
                and issubclass(value, AsyncSession)
                and value is not AsyncSession
                and value not in classes
            ):
                classes.append(value)
    return makers, classes


def test_session_factory(
    *,
    options: Mapping[str, Any] | None,
    named: async_sessionmaker[Any] | None,
    modules: Iterable[Any],
) -> tuple[Callable[..., AsyncSession], str]:
    """The factory of ``db_session`` objects, and where its class and options came from."""
    cls: type[AsyncSession] = AsyncSession
    found: dict[str, Any] = {"expire_on_commit": False}
    source = "default (AsyncSession, expire_on_commit=False)"
    maker = named
    if maker is None:
        makers, classes = _found_in(modules)
        bound = [m for m in makers if isinstance(m.kw.get("bind"), AsyncEngine)]
        candidates = bound or makers
        maker = candidates[0] if candidates else None
        if maker is None and classes:
            cls, source = classes[0], f"{classes[0].__module__}.{classes[0].__qualname__}"
    if maker is not None:
        cls, found = maker.class_, session_options_of(maker)
        source = f"the app's async_sessionmaker ({cls.__name__})"
    if options is not None:
        found = dict(options)
        source += ", options from E2EConfig.session_options"
    fresh = _fresh_class(cls)

    def make(**binding: Any) -> AsyncSession:
        return fresh(**found, **binding, info={FRESH_READS_KEY: True})

    return make, source
