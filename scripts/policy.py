#!/usr/bin/env python3
"""Admin script: `ledger policy …` (see `ledger policy --help`)."""

import sys

from ledger_api.cli import main

if __name__ == "__main__":
    sys.exit(main(["policy", *sys.argv[1:]]))
