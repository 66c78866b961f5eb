"""Start-up: a broken script, or a script placed where it cannot run, stops the server with a
clear message; `[scripts]` keys are checked with the rest of the configuration."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from commserver.app import build_server
from commserver.config import config_from_mapping
from commserver.errors import ConfigError
from dialog_scripts import PACKAGE_DIR
from scripts_engine import InvalidScript, ScriptCatalog, ScriptPlacement, check_placement
from storage import load_model
from tests.channels.conftest import SCRIPT, channel_site

CUSTOMERS_MODEL = (
    Path(__file__).resolve().parents[2] / "storage" / "examples" / "customers-legacy.xml"
)


async def start(tmp_path: Path, **overrides: Any) -> None:
    config = config_from_mapping(channel_site(tmp_path, **overrides))
    async with build_server(config):
        pass


async def test_a_broken_script_in_the_folder_stops_the_start_with_file_and_line(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    shutil.copy(PACKAGE_DIR / "meter-reading.xml", folder)
    broken = (PACKAGE_DIR / "outage-report.xml").read_text(encoding="utf-8")
    (folder / "outage-report.xml").write_text(
        broken.replace('<next to="postcode"/>', '<next to="postcod"/>'), encoding="utf-8"
    )
    with pytest.raises(InvalidScript) as caught:
        await start(tmp_path, scripts={"folder": str(folder)})
    assert f"{folder / 'outage-report.xml'}:" in caught.value.message
    assert "postcod" in caught.value.message


@pytest.mark.parametrize(
    ("scripts", "expected"),
    [
        ({"public": ["sales-greenline"]}, "does not run on the web channel"),
        ({"queues": {"metering": "no-such-script"}}, "no dialog script 'no-such-script'"),
        ({"phone": {"200": "billing-complaint"}}, "does not run on the phone channel"),
    ],
)
async def test_a_script_placed_where_it_cannot_run_stops_the_start(
    tmp_path: Path, scripts: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        await start(tmp_path, scripts=scripts)
    assert expected in caught.value.message


async def test_a_phone_script_transferring_to_a_missing_queue_stops_the_start(
    tmp_path: Path,
) -> None:
    site = channel_site(tmp_path)
    site["queues"] = [q for q in site["queues"] if q["name"] != "gas-emergency"]
    site["agents"] = [a for a in site["agents"] if a["id"] != "g1"]
    with pytest.raises(ConfigError) as caught:
        async with build_server(config_from_mapping(site)):
            pass
    assert "transfers to queue 'gas-emergency', which is not in [[queues]]" in caught.value.message


@pytest.mark.parametrize(
    ("scripts", "key"),
    [
        ({"queues": {"nowhere": SCRIPT}}, "scripts.queues.nowhere"),
        ({"phone": {"999": SCRIPT}}, "scripts.phone.999"),
        ({"smtp_host": "mail"}, "scripts.smtp_host"),
        ({"phone_retries": -1}, "scripts.phone_retries"),
        ({"publik": []}, "scripts.publik"),
    ],
)
def test_scripts_settings_are_checked_with_the_configuration(
    tmp_path: Path, scripts: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(channel_site(tmp_path, scripts=scripts))
    assert key in caught.value.message


def test_placed_scripts_are_checked_strictly_and_the_others_only_noted() -> None:
    catalog = ScriptCatalog()
    assert catalog.load_directory(PACKAGE_DIR) == []
    placement = ScriptPlacement(queues={"metering": SCRIPT})
    models = [load_model(CUSTOMERS_MODEL)]

    registered = check_placement(
        catalog, placement, models=models,
        services={"metering": {"last_reading"}}, queues=["metering"],
    )
    # The metering service is there but lacks a method the script calls: an error.
    assert any("has no method 'submit_reading'" in e for e in registered.errors)
    assert registered.warnings == ()

    missing = check_placement(catalog, placement, models=[], services={}, queues=["metering"])
    assert missing.errors == ()
    assert any("service 'metering' is not registered yet" in w for w in missing.warnings)
    assert any("'Customer' is not in the storage models" in w for w in missing.warnings)
    # Scripts placed nowhere are only noted, whatever their findings.
    assert any("billing-complaint.xml" in n for n in missing.notes)
    assert not any("billing-complaint.xml" in w for w in missing.warnings)


def test_a_customer_field_that_does_not_match_the_model_is_an_error(tmp_path: Path) -> None:
    model = CUSTOMERS_MODEL.read_text(encoding="utf-8").replace(
        '<attribute name="account" column="KONTO_NR" type="string" length="20"/>', ""
    )
    path = tmp_path / "customers.xml"
    path.write_text(model, encoding="utf-8")
    catalog = ScriptCatalog()
    assert catalog.load_directory(PACKAGE_DIR) == []
    result = check_placement(
        catalog, ScriptPlacement(public=frozenset({SCRIPT})), models=[load_model(path)],
        services={"metering": {"last_reading", "submit_reading"}}, queues=[],
    )
    assert any("account" in e and "meter-reading.xml" in e for e in result.errors)
