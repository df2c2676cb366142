#!/usr/bin/env python3
"""Admin script: `ledger org …` (see `ledger org --help`)."""

import sys

from ledger_api.cli import main

if __name__ == "__main__":
    sys.exit(main(["org", *sys.argv[1:]]))
