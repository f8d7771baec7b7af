import subprocess
from pathlib import Path

import asyncpg
import pytest

from engine.config import Settings
from engine.db.migrate import MIGRATIONS_DIR

PROJECT_ROOT = Path(__file__).resolve().parents[2]


async def test_pg_pool_has_migrations(pg_pool: asyncpg.Pool, pg_dsn: str) -> None:
    """The run's database is a fresh `jangteo_test_*` database with every migration applied."""
    database = await pg_pool.fetchval("SELECT current_database()")
    applied = {row["version"] for row in await pg_pool.fetch("SELECT version FROM schema_migrations")}

    assert database.startswith("jangteo_test_")
    assert pg_dsn.endswith(f"/{database}")
    assert applied == {path.stem for path in MIGRATIONS_DIR.glob("*.sql")}


def test_settings_point_at_session_services(settings: Settings, pg_dsn: str, redis_url: str, redis_prefix: str) -> None:
    """The settings fixture carries the run's database, Redis, prefix and SMTP sink."""
    assert settings.database_url == pg_dsn
    assert settings.redis_url == redis_url
    assert settings.redis_prefix == redis_prefix
    assert settings.smtp_url is not None
    assert settings.smtp_url.startswith("smtp://127.0.0.1:")


def test_loop_exception_fails_test(pytester: pytest.Pytester) -> None:
    """An exception that only reaches the event loop's handler turns a passing test into an error."""
    pytester.makeconftest((PROJECT_ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        asyncio_mode = "auto"
        asyncio_default_fixture_loop_scope = "session"
        asyncio_default_test_loop_scope = "session"
        """
    )
    pytester.makepyfile(
        """
        import asyncio

        async def test_callback_raises():
            asyncio.get_running_loop().call_soon(lambda: 1 / 0)
            await asyncio.sleep(0)
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["unhandled exception in the event loop:", "*ZeroDivisionError*"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("test_source", "expected_code"),
    [
        ("def test_passes():\n    assert True\n", 0),
        ("def test_fails():\n    assert False\n", 1),
        (None, 1),
    ],
    ids=["passing", "failing", "no-tests"],
)
def test_scripts_test_exit_code(tmp_path: Path, test_source: str | None, expected_code: int) -> None:
    """scripts/test exits 0 only when tests ran and passed; no collected tests (pytest code 5) is a failure."""
    if test_source is not None:
        (tmp_path / "test_sample.py").write_text(test_source, encoding="utf-8")

    result = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / "test"), str(tmp_path), "-p", "no:cacheprovider", "-q"],
        capture_output=True,
        text=True,
    )

    assert result.returncode == expected_code, result.stdout + result.stderr
