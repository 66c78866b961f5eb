"""The dialog-script format (its DTD) and the scripts Caruso ships for a utility company.

This package holds data, not code: `DTD_PATH` is the DTD every script is validated against,
and `shipped_scripts()` lists the sample scripts. Loading and running them is the job of
`scripts_engine`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

#: The one DTD Caruso validates scripts against, whatever DOCTYPE a file names.
DTD_PATH = PACKAGE_DIR / "dialog-script.dtd"


def shipped_scripts() -> list[Path]:
    """The sample scripts shipped with Caruso, sorted by file name."""
    return sorted(PACKAGE_DIR.glob("*.xml"))


__all__ = ["DTD_PATH", "PACKAGE_DIR", "shipped_scripts"]
