"""Warm start: the embedded cluster's snapshot cache and the schema templates in it.

A run restores the newest snapshot instead of running initdb, reuses the template
whose key matches the schema, rebuilds it when the schema changed or when
--e2e-create-db asks, and saves a new snapshot only when it built something.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fastapi_e2e.database import cache
from fastapi_e2e.database.schema import AlembicSchema, MetadataSchema
from tests.conftest import CONFTEST

TEST_TABLES = """
from sqlalchemy import text

async def test_tables(db_connection):
    tables = await db_connection.scalars(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    )
    assert tables.all() == {expected!r}
"""

EXTRA_TABLE = """
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from shop import Base

class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(20))
"""


def test_second_run_restores_the_cluster_and_reuses_the_template(
    cold_embedded: pytest.Pytester, tmp_path: Path
) -> None:
    cold_embedded.makepyfile(test_tables=TEST_TABLES.format(expected=["audit", "things"]))
    first = cold_embedded.runpytest_subprocess()
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(
        [
            "fastapi-e2e: embedded cluster in *(*, initdb); schema template e2e_tpl_* built;*"
            "cluster cache: saved"
        ]
    )
    assert (tmp_path / "cache").is_dir()

    second = cold_embedded.runpytest_subprocess()
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(
        [
            "fastapi-e2e: embedded cluster in *(*, restored from cache); schema template "
            "e2e_tpl_* reused;*cluster cache: unchanged"
        ]
    )


def test_changed_schema_builds_a_new_template(cold_embedded: pytest.Pytester) -> None:
    cold_embedded.makepyfile(test_tables=TEST_TABLES.format(expected=["audit", "things"]))
    cold_embedded.runpytest_subprocess().assert_outcomes(passed=1)

    # The same app with one more model: the key changes, so the cached template is
    # not used, and the new one is saved for the run after.
    cold_embedded.makepyfile(shop_extra=EXTRA_TABLE)
    cold_embedded.makeconftest("import shop_extra  # noqa: F401\n" + CONFTEST.format(extra=""))
    cold_embedded.makepyfile(test_tables=TEST_TABLES.format(expected=["audit", "labels", "things"]))
    changed = cold_embedded.runpytest_subprocess()
    changed.assert_outcomes(passed=1)
    changed.stdout.fnmatch_lines(
        ["*(*, restored from cache); schema template e2e_tpl_* built;*cluster cache: saved"]
    )
    again = cold_embedded.runpytest_subprocess()
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*schema template e2e_tpl_* reused;*cluster cache: unchanged"])


def test_create_db_rebuilds_an_unchanged_template(cold_embedded: pytest.Pytester) -> None:
    cold_embedded.makepyfile(test_tables=TEST_TABLES.format(expected=["audit", "things"]))
    cold_embedded.runpytest_subprocess().assert_outcomes(passed=1)
    rebuilt = cold_embedded.runpytest_subprocess("--e2e-create-db")
    rebuilt.assert_outcomes(passed=1)
    rebuilt.stdout.fnmatch_lines(
        [
            "*template rebuilt (--e2e-create-db, from command line)*",
            "*restored from cache); schema template e2e_tpl_* built;*cluster cache: saved",
        ]
    )


def test_cache_dir_option_is_shown_with_its_source(
    cold_embedded: pytest.Pytester, tmp_path: Path
) -> None:
    cold_embedded.makepyfile("def test_nothing():\n    pass\n")
    result = cold_embedded.runpytest_subprocess(f"--e2e-cache-dir={tmp_path / 'elsewhere'}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"fastapi-e2e: cluster cache: {tmp_path / 'elsewhere'} (command line)*"]
    )


def test_unusable_cache_falls_back_to_initdb(
    cold_embedded: pytest.Pytester, tmp_path: Path
) -> None:
    # A cache directory that is a file: nothing can be restored or saved, and the run
    # still works from initdb, saying the cache was not saved.
    (tmp_path / "cache").write_text("not a directory")
    cold_embedded.makepyfile(test_tables=TEST_TABLES.format(expected=["audit", "things"]))
    result = cold_embedded.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*(*, initdb);*cluster cache: not saved: *"])


# --- the pieces, directly -----------------------------------------------------------


def test_snapshot_save_and_restore_round_trip(tmp_path: Path) -> None:
    snapshots = cache.SnapshotCache(tmp_path / "cache", Path("/bin/sh"))
    data = tmp_path / "data"
    (data / "base").mkdir(parents=True)
    (data / "base" / "1").write_text("rows")
    assert snapshots.restore(tmp_path / "restored-before") is False
    first = snapshots.save(data)
    (data / "base" / "1").write_text("newer rows")
    second = snapshots.save(data)
    assert first != second
    assert first.is_dir()
    assert snapshots.restore(tmp_path / "restored") is True
    assert (tmp_path / "restored" / "base" / "1").read_text() == "newer rows"


def test_old_snapshots_are_removed_after_the_grace_period(tmp_path: Path) -> None:
    snapshots = cache.SnapshotCache(tmp_path / "cache", Path("/bin/sh"))
    data = tmp_path / "data"
    data.mkdir()
    old = snapshots.save(data)
    snapshots.save(data)  # old stops being current now
    past = time.time() - cache.KEEP_OLD_SNAPSHOTS_FOR - 1
    os.utime(old, (past, past))  # ... and that was longer ago than the grace period
    new = snapshots.save(data)
    assert not old.exists()
    assert new.is_dir()


def test_a_snapshot_replaced_just_now_is_kept_for_runs_still_copying_it(tmp_path: Path) -> None:
    snapshots = cache.SnapshotCache(tmp_path / "cache", Path("/bin/sh"))
    data = tmp_path / "data"
    data.mkdir()
    past = time.time() - cache.KEEP_OLD_SNAPSHOTS_FOR - 1
    os.utime(data, (past, past))  # cp -a gives the snapshot this old mtime
    long_current = snapshots.save(data)
    assert os.stat(long_current).st_mtime < time.time() - cache.KEEP_OLD_SNAPSHOTS_FOR
    snapshots.save(data)  # replaces it: a reader may have resolved it a moment ago
    assert long_current.is_dir()


def test_binaries_key_changes_with_the_binary(tmp_path: Path) -> None:
    binary = tmp_path / "postgres"
    binary.write_text("v15")
    before = cache.binaries_key(binary)
    binary.write_text("v16 is longer")
    assert cache.binaries_key(binary) != before


def test_metadata_key_is_the_ddl_and_follows_the_models() -> None:
    from sqlalchemy import Column, Integer, MetaData, String, Table

    metadata = MetaData()
    Table("t", metadata, Column("id", Integer, primary_key=True))
    before = MetadataSchema(metadata).key()
    assert "CREATE TABLE t" in before
    Table("u", metadata, Column("name", String(10)))
    assert MetadataSchema(metadata).key() != before


def test_alembic_key_follows_the_migration_files(tmp_path: Path) -> None:
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text("# env\n")
    (tmp_path / "migrations" / "versions" / "0001.py").write_text("revision = '0001'\n")
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {tmp_path / 'migrations'}\n")
    schema = AlembicSchema(ini)
    before = schema.key()
    assert schema.key() == before
    (tmp_path / "migrations" / "versions" / "0002.py").write_text("revision = '0002'\n")
    assert schema.key() != before
