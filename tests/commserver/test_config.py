"""The TOML configuration: defaults, strict keys, clear messages naming key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from commserver.config import BackendName, load_config
from commserver.errors import ConfigError

SITE = """
[web]
port = 8099

[telephony]
backend = "sim"
ring_timeout = 12

[[queues]]
name = "support"
skills = { support = 10 }

[[agents]]
id = "2001"
extension = "2001"
skills = { support = 50 }

[ivr.menu]
choices = { "1" = "support" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "caruso.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_documented_defaults() -> None:
    config = load_config(None)
    assert config.web.port == 8080
    assert config.web.host == "127.0.0.1"
    assert config.telephony.backend is BackendName.SIP
    assert config.storage_url == "sqlite+aiosqlite:///var/caruso.db"


def test_a_site_file_is_read_into_typed_sections(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SITE))
    assert config.web.port == 8099
    assert config.telephony.ring_timeout == 12.0
    assert config.queues[0].skills == {"support": 10}
    assert config.agents[0].extension == "2001"
    assert config.ivr.menu.choices == {"1": "support"}


def test_unknown_key_is_refused_naming_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[web]\nprot = 80\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "web.prot" in str(caught.value)
    assert str(path) in str(caught.value)


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'telefony'"):
        load_config(write(tmp_path, "[telefony]\nbackend='sim'\n"))


def test_wrong_type_is_refused_with_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'web.port' must be int, not str '80'"):
        load_config(write(tmp_path, "[web]\nport = '80'\n"))


def test_bad_enum_value_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sim, sip, asterisk"):
        load_config(write(tmp_path, "[telephony]\nbackend = 'skype'\n"))


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[web\nport = 1\n"))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")


def test_menu_choice_must_name_a_queue(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no queue named 'sales'"):
        load_config(write(tmp_path, "[ivr.menu]\nchoices = { '1' = 'sales' }\n"))


def test_skill_levels_outside_1_to_100_are_refused(tmp_path: Path) -> None:
    text = "[[agents]]\nid = 'a'\nskills = { support = 101 }\n"
    with pytest.raises(ConfigError, match=r"agents\[0\].*support.*outside 1-100"):
        load_config(write(tmp_path, text))


def test_duplicate_agent_is_refused(tmp_path: Path) -> None:
    text = "[[agents]]\nid = 'a'\n[[agents]]\nid = 'a'\n"
    with pytest.raises(ConfigError, match="defined twice"):
        load_config(write(tmp_path, text))


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'queues\[0\]\.name': is required"):
        load_config(write(tmp_path, "[[queues]]\nskills = {}\n"))
    with pytest.raises(ConfigError, match=r"'agents\[0\]\.id': is required"):
        load_config(write(tmp_path, "[[agents]]\nextension = '2001'\n"))


def test_acd_keys_are_checked_and_named(tmp_path: Path) -> None:
    text = "[[queues]]\nname = 'support'\nstrategy = 'loudest'\n"
    with pytest.raises(ConfigError, match=r"'queues\[0\]\.strategy': must be one of"):
        load_config(write(tmp_path, text))


def test_a_callback_overflow_is_refused_until_callbacks_can_be_dialled(tmp_path: Path) -> None:
    text = "[[queues]]\nname = 'support'\non_no_agents = 'callback'\n"
    with pytest.raises(ConfigError, match="callback is not available yet"):
        load_config(write(tmp_path, text))


def test_queues_take_the_telephony_ring_timeout_unless_they_set_their_own(tmp_path: Path) -> None:
    text = (
        "[telephony]\nring_timeout = 9\n"
        "[[queues]]\nname = 'a'\n[[queues]]\nname = 'b'\nring_timeout = 4\n"
    )
    config = load_config(write(tmp_path, text))
    assert [q.ring_timeout for q in config.queues] == [9.0, 4.0]
