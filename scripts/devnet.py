#!/usr/bin/env python3
"""Admin script: `ledger devnet …` (see `ledger devnet --help`)."""

import sys

from ledger_api.cli import main

if __name__ == "__main__":
    sys.exit(main(["devnet", *sys.argv[1:]]))
