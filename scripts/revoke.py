#!/usr/bin/env python3
"""Admin script: `ledger revoke …` (see `ledger revoke --help`)."""

import sys

from ledger_api.cli import main

if __name__ == "__main__":
    sys.exit(main(["revoke", *sys.argv[1:]]))
