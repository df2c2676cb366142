#!/usr/bin/env python3
"""Admin script: `ledger deploy …` (see `ledger deploy --help`)."""

import sys

from ledger_api.cli import main

if __name__ == "__main__":
    sys.exit(main(["deploy", *sys.argv[1:]]))
