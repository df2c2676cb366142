#!/usr/bin/env python3
"""Admin script: `ledger grant …` (see `ledger grant --help`)."""

import sys

from ledger_api.cli import main

if __name__ == "__main__":
    sys.exit(main(["grant", *sys.argv[1:]]))
