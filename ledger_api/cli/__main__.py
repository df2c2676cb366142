"""``python -m ledger_api.cli`` is the ``ledger`` command."""

import sys

from ledger_api.cli import main

sys.exit(main())
