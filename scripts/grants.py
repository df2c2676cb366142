#!/usr/bin/env python3
"""Admin script: `ledger grants …` (see `ledger grants --help`)."""

import sys

from ledger_api.cli import main

if __name__ == "__main__":
    sys.exit(main(["grants", *sys.argv[1:]]))
