"""The error root of the ``ledger_api`` package.

Every error this package raises on purpose derives from :class:`LedgerError`, so each boundary (the
CLI, the HTTP API) translates exactly one family of exceptions into its own form: a one-line message
on the command line, RFC 9457 problem details over HTTP.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Something the user can act on went wrong; ``str(error)`` is one clear line."""


class ConfigurationError(LedgerError):
    """A setting is missing, malformed or unsafe for the environment it is used in."""
