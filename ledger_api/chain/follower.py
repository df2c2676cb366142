"""An in-memory view of the organisation registry and the grants, followed block by block from events.

Why: trust invariant 6 (DESIGN.md) wants every read checked against chain state *as of the read*, and a
contract call per read (~110/s through web3, ~700/s as a raw ``eth_call``) does not keep up with the
gateway's reads. The follower replays ``OrganisationRegistry`` and ``GrantRegistry`` events from the
deployment block (plain ``eth_getLogs``, no archive state) into dictionaries, and keeps them current per
block; an access check is then a few dictionary lookups, and the only chain round trip on the read path
is one ``eth_blockNumber`` shared by every concurrent reader (:meth:`ChainFollower.ensure_current`).

State is that of the latest processed block, applied atomically per sync: a reader never sees half a
block. History an auditor needs is kept from the events too: a grant's ``created_block`` and
``revoked_block`` (as the contract stores them), each organisation's suspensions and key rotations by
block, so "was grant g valid at block b" and "was org o suspended at block b" need no archive node.

Reorganisations and node restarts from an older state: when the node's head goes *below* the processed
head, or the hash of the processed head block is no longer the node's block at that height, the view is
rebuilt from scratch from the deployment block (events of lost blocks are forgotten).

Usage::

    follower = ChainFollower(rpc=JsonRpc(url=...), deployment=deployment)
    follower.start()                       # background sync every 0.2 s; reads usually find it current
    follower.ensure_current()              # per read: one shared eth_blockNumber, sync if behind
    follower.access_decision(grant_id=..., ..., now=int(time.time()))
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address

from ledger_api.access.decision import (
    AccessDecision,
    AccessRequest,
    GrantTerms,
    Moment,
    Purpose,
    active_at,
    covers_record,
    decide,
    record_key,
)
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.encoding import OrganisationKind, bytes32_to_code
from ledger_api.chain.errors import ChainUnavailable
from ledger_api.chain.events import DecodedEvent, EventDecoder
from ledger_api.chain.models import Grant, GrantSpec, Organisation
from ledger_api.chain.rpc import JsonRpc, RpcError

log = logging.getLogger(__name__)

#: The events that make up the view; every other event of the two contracts (roles, admin hand-over)
#: is filtered out by topic in ``eth_getLogs`` itself.
REGISTRY_EVENTS = (
    "OrganisationRegistered",
    "OrganisationSuspended",
    "OrganisationReinstated",
    "OrganisationSignerChanged",
    "OrganisationCommunitiesChanged",
    "OrganisationKeyRotated",
)
GRANT_EVENTS = ("GrantCreated", "GrantRevoked")

_ZERO32 = b"\x00" * 32


def _key(value: bytes) -> str:
    """A bytes32 code as a dictionary key: one-to-one with the bytes the contract compares (for the
    ASCII codes of :func:`~ledger_api.chain.encoding.code_to_bytes32` it is the code itself)."""
    return bytes(value).rstrip(b"\x00").decode("latin-1")


@dataclass(frozen=True, kw_only=True)
class OrganisationView:
    """An organisation as of the follower's processed head, with the history its events give."""

    org_id: str
    kind: OrganisationKind
    signer: str
    """Checksummed address that signs for the organisation."""
    suspended: bool
    communities: tuple[str, ...]
    public_keys: tuple[bytes, ...]
    """Every HPKE public key by index (0 = the key it was registered with), ``kem_id || key``."""
    key_blocks: tuple[int, ...]
    """The block in which each public key was published, by index."""
    registered_block: int
    community_history: tuple[tuple[int, tuple[str, ...]], ...] = ()
    """(block, the community codes served from that block on), from registration on, in chain order."""

    @property
    def key_count(self) -> int:
        return len(self.public_keys)

    @property
    def public_key(self) -> bytes:
        """The newest public key."""
        return self.public_keys[-1]

    @property
    def active(self) -> bool:
        return not self.suspended

    def to_model(self) -> Organisation:
        """The same frozen model :meth:`LedgerChain.organisation` returns."""
        return Organisation(
            org_id=self.org_id,
            kind=self.kind,
            signer=self.signer,
            suspended=self.suspended,
            communities=self.communities,
            key_count=self.key_count,
            public_key=self.public_key,
        )


@dataclass(slots=True)
class _GrantEntry:
    """A grant, and its terms as the access rule takes them (codes keyed as :func:`_key` has them)."""

    grant: Grant
    terms: GrantTerms


@dataclass(slots=True)
class _State:
    """Everything the view holds; mutated only under the follower's lock (or before it is published)."""

    head_number: int
    head_timestamp: int = 0
    head_hash: str | None = None
    grants: dict[int, _GrantEntry] = field(default_factory=dict)
    grants_by_grantee: dict[str, list[int]] = field(default_factory=dict)
    organisations: dict[str, OrganisationView] = field(default_factory=dict)
    signers: dict[str, str] = field(default_factory=dict)
    """Lower-case signer address → organisation id."""
    suspensions: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)
    """Organisation id → (block, suspended after that block) from registration on, in chain order."""
    suspended: set[str] = field(default_factory=set)
    """Organisations registered and suspended now (the registry's ``isSuspended``)."""
    events_applied: int = 0


class ChainFollower:
    """A thread-safe, in-memory view of the registry and the grants, current per block.

    Queries (:meth:`access_decision`, :meth:`grant`, :meth:`organisation`, …) never touch the chain:
    they answer as of the latest processed block, :meth:`head`. Keeping that block current is the job of
    :meth:`sync` (explicit), :meth:`start` (a background thread) and :meth:`ensure_current` (the
    per-read guarantee).
    """

    def __init__(
        self,
        *,
        rpc: JsonRpc,
        deployment: Deployment,
        log_chunk: int = 5_000,
    ) -> None:
        self._rpc = rpc
        self._deployment = deployment
        self._log_chunk = max(1, log_chunk)
        registry = deployment.address("OrganisationRegistry").lower()
        grants = deployment.address("GrantRegistry").lower()
        self._decoders = {registry: EventDecoder("OrganisationRegistry"), grants: EventDecoder("GrantRegistry")}
        self._addresses = [registry, grants]
        self._topics = [self._decoders[registry].topic(n) for n in REGISTRY_EVENTS] + [
            self._decoders[grants].topic(n) for n in GRANT_EVENTS
        ]
        self._lock = threading.Lock()  # guards self._state (readers and the apply step)
        self._sync_lock = threading.Lock()  # one sync at a time
        self._state = self._empty_state()
        self._confirmed_at: float | None = None
        """``time.monotonic()`` just before the latest head query the view was then brought up to."""
        self.rebuilds = 0
        """How many times the view was rebuilt from scratch after the node's chain went backwards."""
        # Single flight for ensure_current.
        self._flight = threading.Condition()
        self._flight_started = 0
        self._flight_done = 0
        self._flight_running = False
        self._flight_result: tuple[int | None, BaseException | None] = (None, None)
        # Background mode.
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def deployment(self) -> Deployment:
        return self._deployment

    def _empty_state(self) -> _State:
        return _State(head_number=self._deployment.block_number - 1)

    # --- keeping current ---------------------------------------------------------------------------

    def sync(self) -> int:
        """Process every block up to the node's current head; return the head the view is current to.

        One ``eth_blockNumber``, one header (``eth_getBlockByNumber``) for the head's timestamp and hash,
        one more header when the previous head must be checked for a reorganisation, and chunked
        ``eth_getLogs`` over the new blocks for the two contracts' addresses. A head below the processed
        one, or a processed head block the node no longer has, makes the view rebuild from scratch.
        """
        with self._sync_lock:
            asked = time.monotonic()
            head = self._sync_to(self._rpc.block_number())
            self._confirm(asked)
            return head

    def ensure_current(self) -> int:
        """Make the view current with the node as of this call; return the processed head.

        Guarantee: every transaction that was mined (in block *B*, as seen by this node) before
        ``ensure_current()`` was called is reflected in the view when it returns (the processed head is
        at least *B*), unless the node has since lost block *B* (a restart from an older state, a
        reorganisation), in which case the view no longer holds that block's events either. Reads made
        after the return therefore see every revoke and suspension mined before the read began.

        Cost: one ``eth_blockNumber`` when the view is already current (the background thread usually
        keeps it so), a sync of the missing blocks otherwise. Concurrent callers share one in-flight
        check (single flight): a caller that arrives while a check is running waits for it to finish,
        then shares the *next* check with every other caller that arrived meanwhile. A caller never
        adopts a check that started before it did, since that check's ``eth_blockNumber`` may predate the
        caller's transaction; so a caller waits for at most two checks, and however many threads call,
        the node sees about one ``eth_blockNumber`` per round trip.

        The guarantee is relative to the node behind ``rpc``: behind a load balancer over several
        nodes, a lagging node can answer an older head. Same-height replacement of the processed head
        block (rolled back and re-mined to the same height between two checks) is not seen by this
        cheap check; :meth:`sync` (and the background thread) compare block hashes and catch it.

        Raises :class:`ChainUnavailable` (or the node's :class:`RpcError`) when the check fails: the
        caller must then refuse the read, since currency cannot be shown.
        """
        with self._flight:
            target = self._flight_started + 1  # the first check that starts after this call began
            while True:
                if self._flight_done >= target:
                    shared_head, shared_error = self._flight_result
                    if shared_error is not None:
                        raise ChainUnavailable(f"chain head check failed: {shared_error}") from shared_error
                    assert shared_head is not None
                    return shared_head
                if not self._flight_running:
                    self._flight_running = True
                    self._flight_started += 1
                    mine = self._flight_started
                    break
                self._flight.wait()
        head: int | None = None
        error: BaseException | None = None
        try:
            head = self._check_head()
            return head
        except BaseException as exc:
            error = exc
            raise
        finally:
            with self._flight:
                self._flight_done = mine
                self._flight_result = (head, error)
                self._flight_running = False
                self._flight.notify_all()

    def _check_head(self) -> int:
        asked = time.monotonic()
        node_head = self._rpc.block_number()
        if self._state.head_number == node_head:
            self._confirm(asked)
            return node_head
        with self._sync_lock:
            processed = self._state.head_number
            if processed == node_head:
                head = node_head
            elif processed < node_head:
                head = self._sync_to(node_head)
            else:
                # The view is ahead of the head we were told: either another sync advanced it after our
                # query, or the node went backwards. Ask again now that no one else can advance the view.
                head = self._sync_to(self._rpc.block_number())
            self._confirm(asked)
            return head

    def _confirm(self, asked: float) -> None:
        with self._lock:
            self._confirmed_at = asked if self._confirmed_at is None else max(self._confirmed_at, asked)

    def confirmed_age_s(self) -> float | None:
        """Seconds since the view was last confirmed at the node's head (measured from the moment the
        head was asked for), or None before the first confirmation: how far behind the node it may be."""
        with self._lock:
            confirmed = self._confirmed_at
        return None if confirmed is None else time.monotonic() - confirmed

    def _sync_to(self, target: int) -> int:
        """Bring the view to block ``target`` (the caller holds the sync lock)."""
        state = self._state
        header = self._header(target)
        replaced = target == state.head_number and state.head_hash not in (None, header["hash"])
        if target < state.head_number or replaced:
            log.warning(
                "the node's chain went back from block %d to %d (or replaced it): rebuilding the grant view",
                state.head_number,
                target,
            )
            self._rebuild(target, header)
            return target
        if target > state.head_number and state.head_hash is not None:
            if target == state.head_number + 1:
                previous = header["parentHash"]
            else:
                previous = self._header(state.head_number)["hash"]
            if previous != state.head_hash:
                log.warning("block %d was replaced on the node: rebuilding the grant view", state.head_number)
                self._rebuild(target, header)
                return target
        events = self._fetch(max(state.head_number + 1, self._deployment.block_number), target, header)
        with self._lock:
            _apply(state, events)
            _set_head(state, header)
        return target

    def _rebuild(self, target: int, header: dict[str, Any]) -> None:
        fresh = self._empty_state()
        _apply(fresh, self._fetch(self._deployment.block_number, target, header))
        _set_head(fresh, header)
        with self._lock:
            self._state = fresh
        self.rebuilds += 1

    def _header(self, number: int) -> dict[str, Any]:
        header = self._rpc.block(number)
        if header is None:
            raise ChainUnavailable(f"the node has no block {number} (its chain changed during the sync)")
        return header

    def _fetch(self, first: int, last: int, header: dict[str, Any]) -> list[DecodedEvent]:
        """The view's events in blocks ``first..last``, in chain order, in chunks the node accepts."""
        events: list[DecodedEvent] = []
        chunk = self._log_chunk
        start = first
        while start <= last:
            end = min(start + chunk - 1, last)
            query = {"address": self._addresses, "fromBlock": hex(start), "toBlock": hex(end), "topics": [self._topics]}
            try:
                logs = self._rpc.call("eth_getLogs", [query])
            except RpcError:
                if end == start:
                    raise
                chunk = max(1, (end - start + 1) // 2)  # the node caps the range or the result size
                continue
            for item in logs:
                if item.get("removed"):
                    continue
                if int(item["blockNumber"], 16) == last and item.get("blockHash") not in (None, header["hash"]):
                    raise ChainUnavailable(f"block {last} changed while it was being read; try again")
                decoder = self._decoders.get(str(item["address"]).lower())
                event = decoder.decode(item) if decoder is not None else None
                if event is not None:
                    events.append(event)
            start = end + 1
        events.sort(key=lambda e: (e.block_number, e.log_index))
        return events

    # --- background mode ---------------------------------------------------------------------------

    def start(self, poll_s: float = 0.2, *, backoff_max_s: float = 5.0) -> None:
        """Sync in a daemon thread every ``poll_s`` until :meth:`stop`; chain errors are logged and
        retried with exponential backoff (up to ``backoff_max_s``), never fatal."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(poll_s, backoff_max_s), name="chain-follower", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, poll_s: float, backoff_max_s: float) -> None:
        delay = poll_s
        while not self._stop.is_set():
            try:
                self.sync()
                delay = poll_s
            except Exception:
                delay = min(backoff_max_s, max(poll_s, delay * 2))
                log.warning("chain follower sync failed; retrying in %.1fs", delay, exc_info=True)
            self._stop.wait(delay)

    # --- queries (no chain round trip) -------------------------------------------------------------

    def head(self) -> tuple[int, int]:
        """(block number, timestamp) of the latest processed block."""
        with self._lock:
            return self._state.head_number, self._state.head_timestamp

    def access_decision(
        self,
        *,
        grant_id: int,
        grantee_org: str,
        owner_org: str,
        record_id: str | bytes,
        record_type: str,
        community_code: str,
        purpose: Purpose | int,
        now: int | None = None,
    ) -> AccessDecision:
        """``GrantRegistry.accessDecision`` evaluated in memory at the processed head, same order of checks
        (:func:`~ledger_api.access.decision.decide`).

        Organisation ids, record types and community codes are the short codes the contracts store in
        bytes32; ``record_id`` is 32 bytes or 64 hex digits. With ``now`` (the gateway passes the wall
        clock) the time checks hold both at the head block's timestamp, as the contract has them, and at
        ``now``: NotYetValid when either is before ``validFrom``, Expired when either is at or after
        ``validUntil``. An expired grant therefore stops reads at once even when no block has been mined
        since it expired, and a grant is never allowed where the contract at the head would refuse it:
        stricter than the contract, never looser. Without ``now`` the result equals the contract's.
        """
        request = AccessRequest(
            grantee_org=grantee_org,
            owner_org=owner_org,
            record_id=record_key(record_id),
            record_type=record_type,
            community_code=community_code,
            purpose=purpose,
        )
        with self._lock:
            state = self._state
            entry = state.grants.get(grant_id)
            times = (state.head_timestamp,) if now is None else (state.head_timestamp, now)
            return decide(
                None if entry is None else entry.terms,
                request,
                moment=Moment.at(*times),
                suspended=state.suspended,
            )

    def grant_covers(
        self,
        *,
        grant_id: int,
        grantee_org: str,
        owner_org: str,
        record_id: str | bytes,
        record_type: str,
        community_code: str,
    ) -> bool:
        """Does grant ``grant_id`` speak of this record for this grantee at the processed head
        (:func:`~ledger_api.access.decision.covers_record`), whatever its purpose and validity?"""
        request = AccessRequest(
            grantee_org=grantee_org,
            owner_org=owner_org,
            record_id=record_key(record_id),
            record_type=record_type,
            community_code=community_code,
            purpose=0,
        )
        with self._lock:
            state = self._state
            entry = state.grants.get(grant_id)
            moment = Moment.at(state.head_timestamp)
            return covers_record(None if entry is None else entry.terms, request, moment=moment)

    def grant(self, grant_id: int) -> Grant | None:
        """The grant as the contract's ``grant(grantId)`` returns it (with created/revoked blocks)."""
        with self._lock:
            entry = self._state.grants.get(grant_id)
            return entry.grant if entry is not None else None

    def grants_for(self, grantee_org: str) -> list[Grant]:
        """Every grant ever made to ``grantee_org`` (revoked and expired ones too), by id."""
        with self._lock:
            state = self._state
            return [state.grants[i].grant for i in state.grants_by_grantee.get(grantee_org, ())]

    def grant_count(self) -> int:
        with self._lock:
            return len(self._state.grants)

    def grant_valid_at(self, grant_id: int, *, block_number: int, timestamp: int) -> bool:
        """Was the grant in force in block ``block_number`` mined at ``timestamp``?
        ``created_block <= block_number < revoked_block`` and ``valid_from <= timestamp < valid_until``
        (the contract's rule; organisation suspensions are :meth:`organisation_active_at`)."""
        grant = self.grant(grant_id)
        return grant is not None and grant.is_valid_at(block_number=block_number, timestamp=timestamp)

    def organisation(self, org_id: str) -> OrganisationView | None:
        with self._lock:
            return self._state.organisations.get(org_id)

    def organisations(self) -> list[OrganisationView]:
        """Every registered organisation, in registration order."""
        with self._lock:
            return list(self._state.organisations.values())

    def organisation_of_signer(self, address: str) -> str | None:
        """The organisation ``address`` signs for now, or None."""
        with self._lock:
            return self._state.signers.get(address.lower())

    def is_active(self, org_id: str) -> bool:
        """Registered and not suspended (the contract's ``isActive``)."""
        with self._lock:
            org = self._state.organisations.get(org_id)
            return org is not None and not org.suspended

    def suspension_history(self, org_id: str) -> list[tuple[int, bool]]:
        """(block, suspended after that block) from registration (``(block, False)``) on, in chain order."""
        with self._lock:
            return list(self._state.suspensions.get(org_id, ()))

    def suspended_organisations(self) -> frozenset[str]:
        """The organisations registered and suspended now (the registry's ``isSuspended``)."""
        with self._lock:
            return frozenset(self._state.suspended)

    def organisation_active_at(self, org_id: str, block_number: int) -> bool:
        """Was ``org_id`` registered and not suspended at the end of block ``block_number``?"""
        with self._lock:
            return active_at(self._state.suspensions.get(org_id, ()), block_number)


# --- applying events -------------------------------------------------------------------------------


def _set_head(state: _State, header: dict[str, Any]) -> None:
    state.head_number = int(header["number"], 16)
    state.head_timestamp = int(header["timestamp"], 16)
    state.head_hash = str(header["hash"])


def _apply(state: _State, events: Iterable[DecodedEvent]) -> None:
    for event in events:
        handler = _HANDLERS.get(event.name)
        if handler is not None:
            handler(state, event)
            state.events_applied += 1


def _codes(values: Sequence[bytes]) -> tuple[str, ...]:
    return tuple(bytes32_to_code(v) for v in values)


def _on_grant_created(state: _State, event: DecodedEvent) -> None:
    a = event.args
    record_id = bytes(a["recordId"])
    spec = GrantSpec(
        owner_org=bytes32_to_code(a["ownerOrg"]),
        grantee_org=bytes32_to_code(a["granteeOrg"]),
        purpose=Purpose(a["purpose"]),
        valid_from=int(a["validFrom"]),
        valid_until=int(a["validUntil"]),
        record_types=_codes(a["recordTypes"]),
        communities=_codes(a["communities"]),
        record_id=record_id.hex() if record_id != _ZERO32 else None,
    )
    grant_id = int(a["grantId"])
    grant = Grant(
        grant_id=grant_id,
        spec=spec,
        granted_by=to_checksum_address(a["grantedBy"]),
        by_admin=bool(a["byAdmin"]),
        created_block=event.block_number,
    )
    grantee = _key(a["granteeOrg"])
    terms = GrantTerms(
        owner_org=_key(a["ownerOrg"]),
        grantee_org=grantee,
        purpose=int(a["purpose"]),
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
        record_types=frozenset(_key(t) for t in a["recordTypes"]),
        communities=frozenset(_key(c) for c in a["communities"]),
        record_id=spec.record_id,
        created_block=event.block_number,
    )
    state.grants[grant_id] = _GrantEntry(grant=grant, terms=terms)
    state.grants_by_grantee.setdefault(grantee, []).append(grant_id)


def _on_grant_revoked(state: _State, event: DecodedEvent) -> None:
    entry = state.grants.get(int(event.args["grantId"]))
    if entry is not None and not entry.grant.revoked:
        entry.grant = dataclasses.replace(entry.grant, revoked_block=event.block_number)
        entry.terms = dataclasses.replace(entry.terms, revoked_block=event.block_number)


def _on_registered(state: _State, event: DecodedEvent) -> None:
    a = event.args
    org_id = _key(a["orgId"])
    signer = to_checksum_address(a["signer"])
    state.organisations[org_id] = OrganisationView(
        org_id=bytes32_to_code(a["orgId"]),
        kind=OrganisationKind(a["kind"]),
        signer=signer,
        suspended=False,
        communities=_codes(a["communities"]),
        public_keys=(bytes(a["publicKey"]),),
        key_blocks=(event.block_number,),
        registered_block=event.block_number,
        community_history=((event.block_number, _codes(a["communities"])),),
    )
    state.signers[signer.lower()] = org_id
    state.suspensions[org_id] = [(event.block_number, False)]


def _update(state: _State, event: DecodedEvent, **changes: Any) -> tuple[str, OrganisationView] | None:
    org_id = _key(event.args["orgId"])
    org = state.organisations.get(org_id)
    if org is None:  # the contract emits no event for an unknown organisation; be defensive anyway
        return None
    state.organisations[org_id] = updated = dataclasses.replace(org, **changes)
    return org_id, updated


_Handler = Callable[[_State, DecodedEvent], None]


def _on_suspension(suspended: bool) -> _Handler:
    def handler(state: _State, event: DecodedEvent) -> None:
        if _update(state, event, suspended=suspended) is not None:
            org_id = _key(event.args["orgId"])
            state.suspensions[org_id].append((event.block_number, suspended))
            if suspended:
                state.suspended.add(org_id)
            else:
                state.suspended.discard(org_id)

    return handler


def _on_signer_changed(state: _State, event: DecodedEvent) -> None:
    new_signer = to_checksum_address(event.args["newSigner"])
    changed = _update(state, event, signer=new_signer)
    if changed is not None:
        state.signers.pop(str(event.args["previousSigner"]).lower(), None)
        state.signers[new_signer.lower()] = changed[0]


def _on_communities_changed(state: _State, event: DecodedEvent) -> None:
    org = state.organisations.get(_key(event.args["orgId"]))
    if org is None:
        return
    communities = _codes(event.args["communities"])
    history = (*org.community_history, (event.block_number, communities))
    _update(state, event, communities=communities, community_history=history)


def _on_key_rotated(state: _State, event: DecodedEvent) -> None:
    org = state.organisations.get(_key(event.args["orgId"]))
    if org is None:
        return
    index = int(event.args["keyIndex"])
    if index != len(org.public_keys):
        log.warning("key index %d of %s out of sequence (have %d keys)", index, org.org_id, len(org.public_keys))
    _update(
        state,
        event,
        public_keys=(*org.public_keys, bytes(event.args["publicKey"])),
        key_blocks=(*org.key_blocks, event.block_number),
    )


_HANDLERS: dict[str, _Handler] = {
    "GrantCreated": _on_grant_created,
    "GrantRevoked": _on_grant_revoked,
    "OrganisationRegistered": _on_registered,
    "OrganisationSuspended": _on_suspension(True),
    "OrganisationReinstated": _on_suspension(False),
    "OrganisationSignerChanged": _on_signer_changed,
    "OrganisationCommunitiesChanged": _on_communities_changed,
    "OrganisationKeyRotated": _on_key_rotated,
}


__all__ = ["GRANT_EVENTS", "REGISTRY_EVENTS", "ChainFollower", "OrganisationView"]
