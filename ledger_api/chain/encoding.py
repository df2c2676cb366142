"""Encodings shared by the Python side and the contracts: short codes in bytes32, enums."""

from __future__ import annotations

import enum

# Re-exported: the access vocabulary lives with the access rule, free of the chain (ledger_api.access).
from ledger_api.access.decision import AccessDecision as AccessDecision
from ledger_api.access.decision import Purpose as Purpose


class OrganisationKind(enum.IntEnum):
    """Mirrors ``IOrganisationRegistry.OrganisationKind``."""

    NONE = 0
    POLICE = 1
    PROPERTY = 2
    COMMITTEE = 3
    AUDITOR = 4
    ADMIN = 5

    @classmethod
    def parse(cls, text: str) -> OrganisationKind:
        try:
            kind = cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown organisation kind {text!r}; expected one of {cls.names()}") from None
        if kind is cls.NONE:
            raise ValueError("organisation kind must not be 'none'")
        return kind

    @classmethod
    def names(cls) -> list[str]:
        return [k.name.lower() for k in cls if k is not cls.NONE]


def code_to_bytes32(code: str) -> bytes:
    """A short printable-ASCII code (organisation id, community code, record type) left-aligned in 32 bytes."""
    raw = code.encode("ascii", errors="strict") if code.isascii() else b""
    if not raw or len(raw) > 32 or not all(33 <= b < 127 for b in raw):
        raise ValueError(f"code {code!r} must be 1-32 printable ASCII characters without spaces")
    return raw.ljust(32, b"\x00")


def bytes32_to_code(value: bytes) -> str:
    return bytes(value).rstrip(b"\x00").decode("ascii", errors="replace")


def checksum_address(address: str) -> str:
    """The EIP-55 checksummed form of an address (raises ValueError when it is not one)."""
    from eth_utils.address import to_checksum_address

    try:
        return str(to_checksum_address(address))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an Ethereum address: {address!r}") from exc


def hex_to_bytes32(value: str) -> bytes:
    """A 32-byte value from 64 hex digits (with or without 0x)."""
    text = value[2:] if value.startswith(("0x", "0X")) else value
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes of hex, got {len(raw)}")
    return raw
