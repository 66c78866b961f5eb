"""CLI command plug-ins: each module here is one `caruso <name>` subcommand (see cli.py)."""
