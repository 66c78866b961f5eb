"""`caruso bench sip`'s baseline: SIPp callers through sippy's B2BUA to a SIPp phone, for real."""

from __future__ import annotations

import os
from pathlib import Path

from commserver.bench.sip import (
    free_udp_port,
    free_udp_port_block,
    process_cpu_seconds,
    run_callers,
    sipp_phones,
    sipp_workdir,
    sippy_b2bua,
)
from tests.sip.sip_harness import require_sipp


async def test_sippy_forwards_sipp_callers_to_the_phone_and_each_call_has_a_post_dial_delay(
    tmp_path: Path,
) -> None:
    require_sipp()
    cwd = sipp_workdir(tmp_path / "sipp")
    phone_port, sippy_port = free_udp_port(), free_udp_port()
    async with sipp_phones(cwd, phone_port, timeout=60):
        async with sippy_b2bua(cwd, sippy_port, f"127.0.0.1:{phone_port}") as pid:
            outcome = await run_callers(
                f"127.0.0.1:{sippy_port}", cwd, calls=3, cps=5, hold=0.3, name="via-sippy"
            )
            assert process_cpu_seconds(pid) > 0
    assert outcome.successful == 3, outcome.errors
    assert outcome.failed == 0
    # One post-dial delay per call (ended by the 180 the phone sends before it answers).
    assert len(outcome.rtd_ms["pdd"]) == 3
    assert len(outcome.rtd_ms["answer"]) == 3


def test_a_media_port_block_leaves_room_for_sipps_video_port() -> None:
    base = free_udp_port_block(4)
    assert 1024 <= base <= 65532


def test_process_cpu_seconds_counts_this_process() -> None:
    assert process_cpu_seconds(os.getpid()) > 0
