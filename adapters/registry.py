"""Adapter discovery through the ``ledger.adapters`` entry-point group.

A new department adapter is one module plus one line in pyproject.toml::

    [project.entry-points."ledger.adapters"]
    "police.incidents" = "adapters.police.incidents_csv:IncidentsCsvAdapter"

(then ``pip install -e .`` so the metadata is refreshed). The entry-point name must equal the
adapter's ``name``. The shared conformance suite (tests/adapters/test_conformance.py) then runs the
new adapter on the reference export its ``sample_file`` names under shared/samples/.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from adapters.errors import AdapterRegistrationError, UnknownAdapterError
from adapters.protocol import Adapter

__all__ = ["ENTRY_POINT_GROUP", "all_adapters", "available_adapters", "get_adapter"]

ENTRY_POINT_GROUP = "ledger.adapters"


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # the first distribution on sys.path wins, as for imports
    return found


def available_adapters() -> tuple[str, ...]:
    """Names of every registered adapter, sorted."""
    return tuple(sorted(_entry_points()))


@cache
def _load(name: str, value: str) -> Adapter:
    ep = EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)
    try:
        target = ep.load()
    except (ImportError, AttributeError) as exc:
        raise AdapterRegistrationError(f"adapter {name!r} ({value}) cannot be loaded: {exc}") from exc
    adapter = target() if isinstance(target, type) else target
    if not isinstance(adapter, Adapter):
        raise AdapterRegistrationError(f"adapter {name!r} ({value}) does not implement the Adapter protocol")
    if adapter.name != name:
        raise AdapterRegistrationError(
            f"entry point {name!r} loads an adapter named {adapter.name!r}; the names must match"
        )
    return adapter


def get_adapter(name: str) -> Adapter:
    """The adapter registered under ``name``; :class:`UnknownAdapterError` lists the known names."""
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        raise UnknownAdapterError(name, eps)
    return _load(ep.name, ep.value)


def all_adapters() -> tuple[Adapter, ...]:
    """Every registered adapter, in name order."""
    return tuple(get_adapter(name) for name in available_adapters())
