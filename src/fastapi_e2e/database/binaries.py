"""Find the PostgreSQL server binaries (initdb, postgres) for the embedded cluster."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fastapi_e2e.errors import BAD_BINDIR, POSTGRES_NOT_FOUND, PostgresNotFoundError

REQUIRED = ("initdb", "postgres")

_WELL_KNOWN = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/opt/homebrew/bin",
    "/usr/local/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)


@dataclass(frozen=True)
class PgBinaries:
    """Paths of the server binaries of one PostgreSQL installation."""

    bindir: Path
    initdb: Path
    postgres: Path


def _complete(bindir: Path) -> PgBinaries | None:
    paths = [bindir / name for name in REQUIRED]
    if all(p.is_file() and os.access(p, os.X_OK) for p in paths):
        return PgBinaries(bindir, *paths)
    return None


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key putting the newest version first among glob matches."""
    return tuple(-int(n) for n in re.findall(r"\d+", path)) or (0,)


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip())


def candidate_dirs() -> list[Path]:
    """Directories searched, in order: pg_config, PATH, well-known install locations."""
    found: list[Path] = []
    if (bindir := _pg_config_bindir()) is not None:
        found.append(bindir)
    initdb = shutil.which("initdb")
    if initdb is not None:
        found.append(Path(initdb).resolve().parent)
    for pattern in _WELL_KNOWN:
        found.extend(Path(p) for p in sorted(glob.glob(pattern), key=_version_key))
    return list(dict.fromkeys(found))


def find_binaries(
    bindir: str | os.PathLike[str] | None = None, source: str = "PG_BINDIR"
) -> PgBinaries:
    """Return the binaries in ``bindir`` if given, else the first complete install found."""
    if bindir is not None:
        explicit = Path(bindir)
        binaries = _complete(explicit)
        if binaries is None:
            missing = " and ".join(n for n in REQUIRED if not (explicit / n).is_file())
            raise PostgresNotFoundError(
                BAD_BINDIR.format(
                    source=source, bindir=str(explicit), missing=missing or "executable binaries"
                )
            )
        return binaries
    searched = candidate_dirs()
    for directory in searched:
        if (binaries := _complete(directory)) is not None:
            return binaries
    where = ", ".join(str(d) for d in searched) or "pg_config, PATH, " + ", ".join(_WELL_KNOWN)
    raise PostgresNotFoundError(POSTGRES_NOT_FOUND.format(searched=where))
