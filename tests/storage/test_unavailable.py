"""An unreachable or unusable database gives one clear line, never a traceback or password."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage import StorageError, StorageManager, StorageUnavailable
from tests.conftest import ServerDatabase
from tests.storage.conftest import calls_model


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("template", "shown"),
    [
        (
            "postgresql+asyncpg://caruso:s3cret-pw@127.0.0.1:{port}/test",
            "postgresql+asyncpg://caruso:***@127.0.0.1:{port}/test",
        ),
        (
            "mysql+asyncmy://caruso:s3cret-pw@127.0.0.1:{port}/test",
            "mysql+asyncmy://caruso:***@127.0.0.1:{port}/test",
        ),
        ("postgresql://caruso@127.0.0.1:{port}/test", "postgresql+asyncpg://caruso@127.0.0.1"),
    ],
    ids=["postgresql", "mariadb", "bare-postgresql-url"],
)
async def test_closed_port_is_storage_unavailable_with_url_and_advice(
    template: str, shown: str
) -> None:
    port = closed_port()
    with pytest.raises(StorageUnavailable) as caught:
        await StorageManager.open(template.format(port=port), [calls_model()])
    message = str(caught.value)
    assert message.startswith(f"cannot use the database at {shown.format(port=port)}")
    assert "s3cret-pw" not in message
    assert "s3cret-pw" not in repr(caught.value.details)
    assert "check that the server is running" in message
    assert "\n" not in message
    assert caught.value.code == "storage-unavailable"


async def test_async_with_form_reports_unavailable_too() -> None:
    with pytest.raises(StorageUnavailable):
        async with StorageManager.open(f"postgresql://x@127.0.0.1:{closed_port()}/db"):
            pytest.fail("must not get here")


@pytest.mark.db
@pytest.mark.parametrize("fixture", ["postgres_database", "mariadb_database"])
async def test_wrong_credentials_are_storage_unavailable(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    database: ServerDatabase = request.getfixturevalue(fixture)
    url = make_url(database.url).set(username="caruso_nobody", password="wrong-pw")
    with pytest.raises(StorageUnavailable) as caught:
        await StorageManager.open(url.render_as_string(hide_password=False), [calls_model()])
    message = str(caught.value)
    assert "caruso_nobody:***@" in message
    assert "wrong-pw" not in message
    assert "caruso_nobody" in message.split(": ", 1)[1]  # the server's own reason is kept


async def test_sqlite_file_under_a_regular_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StorageUnavailable) as caught:
        await StorageManager.open(f"sqlite+aiosqlite:///{blocker}/sub/caruso.db", [calls_model()])
    assert "create it or choose a writable path" in str(caught.value)


async def test_sqlite_directory_as_database_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailable, match="is a folder; name a file inside it"):
        await StorageManager.open(f"sqlite+aiosqlite:///{tmp_path}", [calls_model()])


async def test_sqlite_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    garbage = tmp_path / "caruso.db"
    garbage.write_bytes(b"this is not an SQLite database, just text" * 100)
    with pytest.raises(StorageUnavailable) as caught:
        await StorageManager.open(f"sqlite+aiosqlite:///{garbage}", [calls_model()])
    assert "file is not a database" in str(caught.value)
    assert "check that the folder exists and the file is writable" in str(caught.value)


async def test_sqlite_creates_the_missing_parent_folder(tmp_path: Path) -> None:
    path = tmp_path / "var" / "deep" / "caruso.db"
    async with StorageManager.open(f"sqlite:///{path}", [calls_model()]) as manager:
        assert manager.url == f"sqlite+aiosqlite:///{path}"
    assert path.is_file()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "invalid database URL"),
        ("oracle://scott:tiger@127.0.0.1/orcl", "unsupported database oracle://scott:***@"),
        ("postgresql+psycopg2://u@127.0.0.1/db", "cannot use database URL"),
    ],
)
async def test_unusable_urls_are_storage_errors(url: str, fragment: str) -> None:
    with pytest.raises(StorageError, match=re.escape(fragment)) as caught:
        await StorageManager.open(url, [calls_model()])
    assert "tiger" not in str(caught.value)
