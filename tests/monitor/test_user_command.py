"""`caruso user add/list/passwd` as a real process: the password from standard input, the
same configuration loading as `caruso run`, clear one-line errors with exit status 2."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest

from commserver.cli import main
from monitor.accounts import MODEL_FILE, AccountStore, Role
from storage import StorageManager, load_model

CARUSO = [sys.executable, "-m", "commserver.cli"]


def caruso(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    config = tmp_path / "caruso.toml"
    if not config.exists():
        config.write_text(
            f"[server]\ndata_dir = '{tmp_path / 'var'}'\n"
            "[[agents]]\nid = 's1'\n"
        )
    return subprocess.run(
        [*CARUSO, "user", *args, "--config", str(config)], input=stdin, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )


async def authenticate(tmp_path: Path, name: str, password: str) -> Role | None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'caruso.db'}"
    async with await StorageManager.open(url, models=[load_model(MODEL_FILE)]) as storage:
        principal = await AccountStore(storage).authenticate(name, password)
    return principal.role if principal else None


async def test_user_add_reads_the_password_from_stdin_and_the_user_can_sign_in(
    tmp_path: Path,
) -> None:
    added = caruso(tmp_path, "add", "Sue", "--role", "supervisor", stdin="pass word 1\n")
    agent = caruso(tmp_path, "add", "ann", "--role", "agent", "--agent-id", "x9",
                   stdin="pass word 2\n")
    listed = caruso(tmp_path, "list")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "user sue added (supervisor)"
    assert "pass word" not in added.stdout + added.stderr
    assert agent.returncode == 0, agent.stderr
    assert "no agent 'x9' in the configuration" in agent.stderr  # a warning only
    assert listed.stdout.split() == ["ann", "agent", "x9", "sue", "supervisor"]
    assert await authenticate(tmp_path, "sue", "pass word 1") is Role.SUPERVISOR
    assert await authenticate(tmp_path, "sue", "pass word 1\n") is None
    assert await authenticate(tmp_path, "ann", "pass word 2") is Role.AGENT


def test_user_passwd_and_user_errors_which_are_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "caruso.toml"
    config.write_text(f"[server]\ndata_dir = '{tmp_path / 'var'}'\n")

    def user(*args: str, stdin: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))  # not a TTY: one line is read
        code = main(["user", *args, "--config", str(config)])
        return code, capsys.readouterr().err

    assert user("add", "sue", "--role", "admin", stdin="first password\n")[0] == 0
    assert user("passwd", "SUE", stdin="second password\n")[0] == 0
    assert asyncio.run(authenticate(tmp_path, "sue", "second password")) is Role.ADMIN
    cases = {
        "already exists": user("add", "SUE", "--role", "admin", stdin="first password\n"),
        "needs the agent id": user("add", "ann", "--role", "agent", stdin="first password\n"),
        "at least 8 characters": user("add", "bob", "--role", "admin", stdin="short\n"),
        "no user 'nobody'": user("passwd", "nobody", stdin="first password\n"),
        "must be 1-64 characters": user("add", "<b>", "--role", "admin", stdin="long enough\n"),
    }
    for expected, (code, err) in cases.items():
        assert code == 2, (expected, err)
        assert expected in err
        assert err.startswith("caruso: ")
        assert len(err.strip().splitlines()) == 1
