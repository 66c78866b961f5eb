"""`caruso user`: accounts of the web front (add, list, passwd).

The password is asked twice on a terminal (getpass), or read as one line from standard input
when that is not a terminal (`printf '%s\\n' "$PW" | caruso user add ...`). It is never taken
from the command line, where other users of the machine could read it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from commserver.cli import add_config_argument, config_path
from commserver.config import Config, load_config
from monitor.accounts import MODEL_FILE, AccountStore, Role, check_new_account, check_password
from monitor.domain_errors import MonitorError
from storage import StorageManager, load_model

HELP = "manage the web front's accounts: add, list, passwd"
EXIT_USER_ERROR = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """The `user` subcommands."""
    actions = parser.add_subparsers(dest="user_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create an account (asks for the password)")
    add.add_argument("name", help="sign-in name (letters, digits, . _ @ -; case-insensitive)")
    add.add_argument("--role", required=True, choices=[r.value for r in Role],
                     help="agent: desktop; supervisor: monitor and actions; admin: everything")
    add.add_argument("--agent-id", default=None,
                     help="the agent this user works as (required for --role agent)")
    add_config_argument(add)
    listing = actions.add_parser("list", help="list accounts")
    add_config_argument(listing)
    passwd = actions.add_parser("passwd", help="set a new password (asks for it)")
    passwd.add_argument("name")
    add_config_argument(passwd)


def read_password() -> str:
    """Twice with getpass on a terminal; otherwise one line from standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise MonitorError("the two passwords differ; nothing was changed")
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


async def _with_store(config: Config, work: str, args: argparse.Namespace, password: str) -> None:
    async with await StorageManager.open(
        config.storage_url, models=[load_model(MODEL_FILE)]
    ) as storage:
        accounts = AccountStore(storage)
        if work == "add":
            user = await accounts.add(args.name, password, Role(args.role), args.agent_id)
            linked = f", agent {user.agent_id}" if user.agent_id else ""
            print(f"user {user.name} added ({user.role.value}{linked})")
        elif work == "passwd":
            await accounts.set_password(args.name, password)
            print(f"password of {args.name.strip().lower()} changed")
        else:
            users = await accounts.list()
            for user in users:
                print(f"{user.name:<24} {user.role.value:<11} {user.agent_id or ''}".rstrip())
            if not users:
                print("no users yet: caruso user add NAME --role supervisor")


def run(args: argparse.Namespace) -> int:
    """Run one `user` action; user errors are one line on stderr and exit status 2."""
    config = load_config(config_path(args.config))
    try:
        password = ""
        if args.user_action == "add":
            check_new_account(args.name, Role(args.role), args.agent_id)
            known = {a.id for a in config.agents}
            if args.agent_id and known and args.agent_id not in known:
                print(f"caruso: warning: no agent '{args.agent_id}' in the configuration's"
                      " [[agents]]", file=sys.stderr)
        if args.user_action in ("add", "passwd"):
            password = read_password()
            check_password(password)
        asyncio.run(_with_store(config, args.user_action, args, password))
    except MonitorError as exc:
        print(f"caruso: {exc.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
