"""The ``ledger`` command: devnet, deploy, orgs, grants, policy, demo.

Every command module adds its sub-commands to one parser. Errors the user can act on (any
:class:`~ledger_api.errors.LedgerError`) are printed as one line on stderr with exit status 1;
bad command-line usage exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ledger_api import __version__
from ledger_api.cli import admin_commands, audit_commands, chain_commands, demo, gateway_commands, import_commands
from ledger_api.errors import LedgerError

COMMAND_MODULES = (chain_commands, admin_commands, gateway_commands, import_commands, demo, audit_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger", description="Cross-community safety data-sharing ledger: admin, gateway and audit tools."
    )
    parser.add_argument("--version", action="version", version=f"ledger {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except LedgerError as exc:
        print(f"ledger: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`ledger … | head`): not an error of ours; stop quietly.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ledger: interrupted", file=sys.stderr)
        return 130
    return result
