"""Cross-community safety data-sharing ledger: gateway, chain layer, admin and audit tools."""

__version__ = "0.1.0"
