"""The transaction outbox engine shared by every chain outbox (record batches, access-log tree heads).

See :mod:`ledger_api.outbox.engine` for the states and why each exists; :mod:`ledger_api.outbox.ports`
for what a client and a sender supply.
"""

from ledger_api.outbox.engine import OutboxEngine
from ledger_api.outbox.ports import Formed, OnChain, OutboxClient, OutboxRow, OutboxSettings, Sender, Verdict

__all__ = ["Formed", "OnChain", "OutboxClient", "OutboxEngine", "OutboxRow", "OutboxSettings", "Sender", "Verdict"]
