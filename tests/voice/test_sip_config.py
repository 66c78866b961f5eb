"""The `[telephony.sip]` section and the agents' SIP keys: defaults and refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commserver.app import make_backend
from commserver.config import config_from_mapping, load_config
from commserver.errors import ConfigError
from commserver.telephony.sip import SipBackend
from tests.voice.conftest import voice_site

TESTBED = Path(__file__).resolve().parents[2] / "sip-testbed" / "caruso.toml"


def test_defaults_listen_on_loopback_5060_with_a_media_range() -> None:
    sip = config_from_mapping({}).telephony.sip
    assert (sip.host, sip.port, sip.realm) == ("127.0.0.1", 5060, "caruso")
    assert (sip.rtp_port_min, sip.rtp_port_max) == (10000, 20000)
    assert sip.trunk == ""
    assert sip.ready_on_register is False


def test_the_sip_backend_takes_agents_passwords_and_the_trunk(tmp_path: Path) -> None:
    raw = voice_site(tmp_path, telephony={"sip": {"trunk": "192.0.2.10:5070", "max_calls": 40}})
    backend = make_backend(config_from_mapping(raw))
    assert isinstance(backend, SipBackend)
    assert backend.sip_config.credentials("2001") == "pw2001"
    assert backend.sip_config.credentials("s1") is None  # phones log in by extension
    assert backend.sip_config.max_calls == 40
    assert backend.trunk is not None
    assert (backend.trunk.host, backend.trunk.port) == ("192.0.2.10", 5070)
    assert backend.ivr_numbers == frozenset({"100"})


def test_the_sip_testbed_site_loads() -> None:
    config = load_config(TESTBED)
    assert config.telephony.sip.port == 5060
    assert config.telephony.sip.ready_on_register is True
    assert config.ivr.numbers == ("100",)
    assert dict(config.ivr.menu.choices) == {"1": "support", "2": "billing"}
    extensions = [a.extension for a in config.agents]
    assert extensions == [str(n) for n in range(2001, 2181)]
    assert all(a.sip_password == f"pw{a.extension}" for a in config.agents)
    assert not any(a.logged_in for a in config.agents)  # they log in by registering
    routed = config.acd.agents  # skills are the ACD's part of each [[agents]] table
    assert [a.id for a in routed] == [a.id for a in config.agents]
    assert {s for a in routed for s in a.skills} == {"support", "billing"}
    assert sum("support" in a.skills for a in routed) > 60
    assert sum("billing" in a.skills for a in routed) > 60


@pytest.mark.parametrize(
    ("sip", "key"),
    [
        ({"trunk": "carrier:notaport"}, "telephony.sip.trunk"),
        ({"trunk": ":5060"}, "telephony.sip.trunk"),
        ({"host": "0.0.0.0"}, "telephony.sip.advertised_host"),
        ({"rtp_port_min": 20000, "rtp_port_max": 10000}, "telephony.sip.rtp_port_min"),
        ({"rtp_port_min": 80, "rtp_port_max": 90}, "telephony.sip.rtp_port_min"),
        ({"rtp_port_min": 10001, "rtp_port_max": 10001}, "telephony.sip.rtp_port_max"),
        ({"port": 70000}, "telephony.sip.port"),
        ({"max_calls": -1}, "telephony.sip.max_calls"),
        ({"realm": ""}, "telephony.sip.realm"),
        ({"tls": True}, "telephony.sip.tls"),
    ],
)
def test_bad_sip_settings_are_refused_naming_the_key(
    tmp_path: Path, sip: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_mapping(voice_site(tmp_path, telephony={"sip": sip}))
    assert refused.value.details["key"] == key


@pytest.mark.parametrize(
    ("agent", "key"),
    [
        ({"id": "x", "extension": "2001"}, "agents[2].extension"),  # 2001 is taken
        ({"id": "x", "extension": "100"}, "agents[2].extension"),  # the IVR's number
        ({"id": "x", "sip_password": "secret"}, "agents[2].sip_password"),  # nothing to register
    ],
)
def test_agents_phones_must_be_unambiguous(tmp_path: Path, agent: dict[str, Any], key: str) -> None:
    raw = voice_site(tmp_path)
    raw["agents"] = [*raw["agents"], agent]
    with pytest.raises(ConfigError) as refused:
        config_from_mapping(raw)
    assert refused.value.details["key"] == key
