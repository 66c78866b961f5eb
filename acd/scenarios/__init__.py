"""Example simulation scenarios (TOML), shipped with the package; see docs/acd.md."""

from pathlib import Path

SCENARIOS_DIR = Path(__file__).parent
"""The folder holding the example `*.toml` scenarios."""
