import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from embedded.common import EmbeddedServiceError
from embedded.postgres import ensure_database, ensure_postgres, stop_postgres

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres_root() -> Iterator[Path]:
    # A directory every user may enter: as root the server runs as the `pgserver` user.
    base = Path(tempfile.mkdtemp(prefix="jangteo-test-embedded-pg-"))
    base.chmod(0o755)
    yield base / "postgres"
    stop_postgres(base / "postgres")
    shutil.rmtree(base, ignore_errors=True)


async def test_postgres_keeps_data_across_restart(postgres_root: Path) -> None:
    """A row written before a stop is read back after the next start, on the same port."""
    first = ensure_postgres(postgres_root)
    assert await ensure_database(first.dsn(), "jangteo") is True
    connection = await asyncpg.connect(first.dsn("jangteo"))
    try:
        await connection.execute("CREATE TABLE kept (name text)")
        await connection.execute("INSERT INTO kept VALUES ('사과')")
    finally:
        await connection.close()

    assert stop_postgres(postgres_root) is True
    second = ensure_postgres(postgres_root)

    assert second.port == first.port
    connection = await asyncpg.connect(second.dsn("jangteo"))
    try:
        assert await connection.fetchval("SELECT name FROM kept") == "사과"
    finally:
        await connection.close()


async def test_postgres_reuses_running_server(postgres_root: Path) -> None:
    """A second start finds the running server and neither restarts it nor recreates the database."""
    first = ensure_postgres(postgres_root)
    await ensure_database(first.dsn(), "jangteo")
    connection = await asyncpg.connect(first.dsn())
    try:
        backend_start = await connection.fetchval("SELECT pg_postmaster_start_time()")
    finally:
        await connection.close()

    second = ensure_postgres(postgres_root)

    assert second.port == first.port
    assert await ensure_database(second.dsn(), "jangteo") is False
    connection = await asyncpg.connect(second.dsn())
    try:
        assert await connection.fetchval("SELECT pg_postmaster_start_time()") == backend_start
    finally:
        await connection.close()


async def test_postgres_cluster_is_utf8(postgres_root: Path) -> None:
    """The cluster stores text as UTF-8 and listens on loopback only."""
    server = ensure_postgres(postgres_root)
    connection = await asyncpg.connect(server.dsn())
    try:
        assert await connection.fetchval("SHOW server_encoding") == "UTF8"
        assert await connection.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await connection.close()


def test_stop_postgres_without_server(tmp_path: Path) -> None:
    """Stopping a data directory where no server runs reports that nothing was stopped."""
    assert stop_postgres(tmp_path / "postgres") is False


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as the pgserver user")
def test_postgres_as_root_unreachable_dir(postgres_root: Path) -> None:
    """As root, a data directory the pgserver user cannot enter is rejected with the chmod fix in the message."""
    closed = postgres_root.parent / "closed"
    closed.mkdir(mode=0o700)

    with pytest.raises(EmbeddedServiceError, match=r"chmod o\+x \S*/closed`"):
        ensure_postgres(closed / "postgres")
