"""A contact has one run of its script: found again after a restart through the stored link,
and started even when the site's storage has no customer object."""

from __future__ import annotations

import logging

import pytest

from dialog_scripts import PACKAGE_DIR
from scripts_engine import (
    Channel,
    ScriptCatalog,
    ScriptRunner,
    StorageBusinessObjects,
    StorageRunStore,
    runs_model,
)
from storage import StorageManager
from tests.channels.conftest import SCRIPT


def runner_on(storage: StorageManager) -> ScriptRunner:
    catalog = ScriptCatalog()
    assert catalog.load_directory(PACKAGE_DIR) == []
    objects = StorageBusinessObjects(storage)
    return ScriptRunner(catalog, store=StorageRunStore(storage), objects=objects)


async def test_the_run_of_a_contact_is_found_again_after_a_restart(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scripts_engine.session")
    async with StorageManager.open(db_url, models=[runs_model()]) as storage:
        first, created = await runner_on(storage).for_contact(
            SCRIPT, Channel.AGENT, "c1-call", agent="m1", customer="4711",
            call={"caller": "+4930"},
        )
        assert created
        # No Customer object in this storage: the customer counts as unknown, with a warning.
        assert first.state.customer == {"name": None, "account": None, "email": None}
        assert "customer fields of scripts stay empty" in caplog.text
        assert first.state.call["contact_id"] == "c1-call"
        await first.answer("ask_account", "4711001")

    async with StorageManager.open(db_url, models=[runs_model()]) as storage:
        restarted = runner_on(storage)
        again, created = await restarted.for_contact(SCRIPT, Channel.AGENT, "c1-call", agent="m1")
        assert not created
        assert again.id == first.id
        assert again.view().step_id == "meter_kind"
        other, created = await restarted.for_contact(SCRIPT, Channel.AGENT, "c2-call", agent="m1")
        assert created
        assert other.id != first.id
        assert await StorageRunStore(storage).find_by_contact("c2-call") == other.id
        assert await StorageRunStore(storage).find_by_contact("c3-call") is None
