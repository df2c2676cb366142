"""Free loopback TCP ports for the servers the tests start."""

from __future__ import annotations

from ledger_api.chain.devnet import free_port, free_ports

__all__ = ["free_port", "free_ports"]
