"""Caruso's communication server: lifecycle, configuration, wiring, contacts, telephony, CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("caruso")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
