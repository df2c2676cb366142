"""Free loopback TCP ports for the servers the tests start."""

from __future__ import annotations

from ledger_api.chain.devnet import free_port


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now, below the kernel's
    ephemeral range (see :func:`ledger_api.chain.devnet.free_port`).

    Another process (a parallel pytest-xdist worker) can still take one before our server binds it:
    callers retry their start-up with fresh ports when a bind fails.
    """
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


__all__ = ["free_port", "free_ports"]
