"""The `caruso` command as a user runs it: version, clear start-up errors, run and stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

CARUSO = [sys.executable, "-m", "commserver.cli"]


def caruso(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CARUSO, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version(tmp_path: Path) -> None:
    result = caruso("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("caruso ")


def test_a_malformed_config_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[web]\nport = 8080\nprot = 1\n")
    result = caruso("run", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown key 'web.prot'" in result.stderr
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_a_clear_message_and_exit_2(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = tmp_path / "caruso.toml"
    config.write_text(
        f'[storage]\nurl = "postgresql+asyncpg://caruso:secret@127.0.0.1:{port}/caruso"\n'
        "[web]\nport = 0\n"
    )
    result = caruso("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
    assert "secret" not in result.stderr


def test_a_malformed_business_object_model_is_a_clear_message_and_exit_2(tmp_path: Path) -> None:
    model = tmp_path / "company.xml"
    model.write_text('<model name="x">\n  <object name="Customer">\n</model>\n')
    config = tmp_path / "caruso.toml"
    config.write_text(f'[storage]\nmodels = ["{model}"]\n[web]\nport = 0\n')
    result = caruso("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{model}:" in result.stderr


async def test_run_answers_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "caruso.toml"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        sip_port = udp.getsockname()[1]
    # The defaults, on free ports: the embedded SIP server and the web front.
    config.write_text(
        f"[web]\nport = {port}\n[server]\ndata_dir = '{tmp_path / 'var'}'\n"
        f"[telephony.sip]\nport = {sip_port}\n"
    )
    process = await asyncio.create_subprocess_exec(
        *CARUSO,
        "run",
        "--config",
        str(config),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"is up (sip backend)" in banner
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/health") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0
    assert (tmp_path / "var" / "caruso.db").exists()


@pytest.mark.parametrize("command", [["bench"], ["run", "--config"]])
def test_incomplete_commands_are_usage_errors(tmp_path: Path, command: list[str]) -> None:
    result = caruso(*command, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr
