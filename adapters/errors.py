"""Errors raised by the department adapters.

Everything the package raises on purpose derives from :class:`AdapterError`, so a caller (the CLI,
the gateway) can catch one type. File-level problems (an unknown adapter, an unreadable file, a file
whose required columns are missing) are raised; row-level problems never are: they become
:class:`adapters.protocol.BadRow` items so that one bad row never stops the file.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AdapterError",
    "AdapterRegistrationError",
    "InputTooLargeError",
    "MissingColumnsError",
    "MissingContextError",
    "RowValidationError",
    "UnknownAdapterError",
    "UnreadableFileError",
]


class AdapterError(Exception):
    """Root of every error raised by the adapters package."""


class UnknownAdapterError(AdapterError, LookupError):
    """No adapter is registered under the requested name."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        listing = ", ".join(self.known) if self.known else "(none registered; is the package installed?)"
        super().__init__(
            f"unknown adapter {name!r}; known adapters: {listing}. "
            'Adapters are registered in the [project.entry-points."ledger.adapters"] section of pyproject.toml.'
        )


class AdapterRegistrationError(AdapterError):
    """An entry point in the ``ledger.adapters`` group does not load a valid adapter."""


class UnreadableFileError(AdapterError):
    """The file cannot be read at all (unknown encoding, not a workbook, not JSON, ...)."""

    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(f"{file}: {reason}")


class InputTooLargeError(UnreadableFileError):
    """The file would cost more to read than :class:`adapters.limits.InputLimits` allow (e.g. a zip bomb)."""


class MissingColumnsError(AdapterError):
    """The file lacks columns the adapter requires: one error for the file, not one per row."""

    def __init__(self, file: str, missing: Iterable[str], *, adapter: str | None = None, detail: str = "") -> None:
        self.file = file
        self.missing = tuple(missing)
        self.adapter = adapter
        who = f" (adapter {adapter})" if adapter else ""
        extra = f"; {detail}" if detail else ""
        super().__init__(f"{file}{who}: missing required column(s): {', '.join(self.missing)}{extra}")


class MissingContextError(AdapterError):
    """The import context lacks a value the adapter needs for this file (e.g. ``as_of``)."""


class RowValidationError(AdapterError, ValueError):
    """One row is invalid. Raised inside adapters and turned into a BadRow; never escapes ``parse``."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)
