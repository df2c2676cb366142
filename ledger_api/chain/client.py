"""The ledger contracts as one typed facade: reads return frozen models, writes are signed locally."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from ledger_api.access.decision import Moment
from ledger_api.chain.artifacts import contract_abi
from ledger_api.chain.deploy import LOG_WRITER_ROLE, Deployment
from ledger_api.chain.encoding import (
    OrganisationKind,
    Purpose,
    bytes32_to_code,
    code_to_bytes32,
    hex_to_bytes32,
)
from ledger_api.chain.models import Grant, GrantSpec, Organisation, PendingSigner
from ledger_api.chain.providers import connect
from ledger_api.chain.transactor import GasPricing, Transactor

ORG_ADMIN_ROLE = Web3.keccak(text="ORG_ADMIN_ROLE")
ZERO32 = b"\x00" * 32


class LedgerChain:
    """Handles to the deployed ledger contracts on one chain."""

    def __init__(self, *, transactor: Transactor, deployment: Deployment) -> None:
        self._tx = transactor
        self._deployment = deployment
        w3 = transactor.w3

        def bind(name: str) -> Contract:
            address = Web3.to_checksum_address(deployment.address(name))
            return w3.eth.contract(address=address, abi=contract_abi(name))

        self.registry = bind("OrganisationRegistry")
        self.grants = bind("GrantRegistry")
        self.records = bind("RecordAnchors")
        self.access_log = bind("AccessLogAnchors")
        self.verifier = bind("InclusionVerifier")

    @classmethod
    def from_settings(
        cls,
        *,
        rpc_url: str,
        deployment: Deployment,
        gas_pricing: GasPricing = "auto",
        confirmations: int = 0,
    ) -> LedgerChain:
        w3 = connect(rpc_url)
        transactor = Transactor(w3=w3, gas_pricing=gas_pricing, confirmations=confirmations)
        return cls(transactor=transactor, deployment=deployment)

    @property
    def transactor(self) -> Transactor:
        return self._tx

    @property
    def deployment(self) -> Deployment:
        return self._deployment

    @property
    def w3(self) -> Web3:
        return self._tx.w3

    # --- organisations -------------------------------------------------------------------------

    def register_organisation(
        self,
        *,
        signer: LocalAccount,
        org_id: str,
        kind: OrganisationKind,
        org_signer: str,
        communities: Sequence[str],
        public_key: bytes,
    ) -> TxReceipt:
        fn = self.registry.functions.registerOrganisation(
            code_to_bytes32(org_id),
            int(kind),
            Web3.to_checksum_address(org_signer),
            [code_to_bytes32(c) for c in communities],
            public_key,
        )
        return self._tx.transact(fn, signer=signer)

    def suspend_organisation(self, *, signer: LocalAccount, org_id: str) -> TxReceipt:
        return self._tx.transact(self.registry.functions.suspendOrganisation(code_to_bytes32(org_id)), signer=signer)

    def reinstate_organisation(self, *, signer: LocalAccount, org_id: str) -> TxReceipt:
        fn = self.registry.functions.reinstateOrganisation(code_to_bytes32(org_id))
        return self._tx.transact(fn, signer=signer)

    def propose_signer_change(self, *, signer: LocalAccount, org_id: str, new_signer: str) -> TxReceipt:
        """An admin's proposal: effective on the organisation's acceptance or after the registry's delay."""
        to = Web3.to_checksum_address(new_signer)
        return self._tx.transact(
            self.registry.functions.proposeSignerChange(code_to_bytes32(org_id), to), signer=signer
        )

    def accept_signer_change(self, *, signer: LocalAccount, org_id: str) -> TxReceipt:
        """The organisation's current signer accepts the pending change (it takes effect at once)."""
        return self._tx.transact(self.registry.functions.acceptSignerChange(code_to_bytes32(org_id)), signer=signer)

    def complete_signer_change(self, *, signer: LocalAccount, org_id: str) -> TxReceipt:
        """The proposed signer (or an admin) completes a pending change once its delay has passed."""
        return self._tx.transact(self.registry.functions.completeSignerChange(code_to_bytes32(org_id)), signer=signer)

    def cancel_signer_change(self, *, signer: LocalAccount, org_id: str) -> TxReceipt:
        return self._tx.transact(self.registry.functions.cancelSignerChange(code_to_bytes32(org_id)), signer=signer)

    def pending_signer(self, org_id: str) -> PendingSigner | None:
        """The signer change waiting for acceptance or its delay, or None."""
        address, effective_at = self._tx.call(self.registry.functions.pendingSigner(code_to_bytes32(org_id)))
        if int(address, 16) == 0:
            return None
        return PendingSigner(signer=str(address), effective_at=int(effective_at))

    def set_communities(self, *, signer: LocalAccount, org_id: str, communities: Sequence[str]) -> TxReceipt:
        fn = self.registry.functions.setCommunities(code_to_bytes32(org_id), [code_to_bytes32(c) for c in communities])
        return self._tx.transact(fn, signer=signer)

    def rotate_key(self, *, signer: LocalAccount, org_id: str, public_key: bytes) -> TxReceipt:
        return self._tx.transact(self.registry.functions.rotateKey(code_to_bytes32(org_id), public_key), signer=signer)

    def organisation(self, org_id: str) -> Organisation:
        raw = self._tx.call(self.registry.functions.organisation(code_to_bytes32(org_id)))
        _, key = self._tx.call(self.registry.functions.currentPublicKey(code_to_bytes32(org_id)))
        return _organisation(org_id, raw, bytes(key))

    def public_key(self, org_id: str, index: int) -> bytes:
        return bytes(self._tx.call(self.registry.functions.publicKey(code_to_bytes32(org_id), index)))

    def organisation_of_signer(self, address: str) -> str | None:
        raw = self._tx.call(self.registry.functions.organisationOfSigner(Web3.to_checksum_address(address)))
        return bytes32_to_code(raw) if bytes(raw) != ZERO32 else None

    def organisations(self) -> list[Organisation]:
        count = self._tx.call(self.registry.functions.organisationCount())
        ids = [bytes32_to_code(self._tx.call(self.registry.functions.organisationIdAt(i))) for i in range(count)]
        return [self.organisation(org_id) for org_id in ids]

    # --- roles -------------------------------------------------------------------------------------

    def is_org_admin(self, address: str) -> bool:
        return bool(self._tx.call(self.registry.functions.hasRole(ORG_ADMIN_ROLE, Web3.to_checksum_address(address))))

    def grant_log_writer(self, *, signer: LocalAccount, account: str) -> TxReceipt:
        fn = self.registry.functions.grantRole(LOG_WRITER_ROLE, Web3.to_checksum_address(account))
        return self._tx.transact(fn, signer=signer)

    # --- grants --------------------------------------------------------------------------------

    def create_grant(self, *, signer: LocalAccount, spec: GrantSpec) -> tuple[int, TxReceipt]:
        receipt = self._tx.transact(self.grants.functions.createGrant(grant_request(spec)), signer=signer)
        (event,) = self.grants.events.GrantCreated().process_receipt(receipt)
        return int(event["args"]["grantId"]), receipt

    def revoke_grant(self, *, signer: LocalAccount, grant_id: int) -> TxReceipt:
        return self._tx.transact(self.grants.functions.revokeGrant(grant_id), signer=signer)

    def grant(self, grant_id: int) -> Grant:
        return _grant(grant_id, self._tx.call(self.grants.functions.grant(grant_id)))

    def grant_count(self) -> int:
        return int(self._tx.call(self.grants.functions.grantCount()))

    def iter_grants(self) -> Iterator[Grant]:
        for grant_id in range(1, self.grant_count() + 1):
            yield self.grant(grant_id)

    def latest_timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def moment_now(self) -> Moment:
        """Now as the gateway's read path judges a grant: at the chain's head *and* by this machine's clock.

        On an idle chain the newest block's time lags the clock; a grant whose ``until`` passed by the
        clock is refused by the read path, so it must not be listed as active either."""
        return Moment.at(self.latest_timestamp(), time.time())


def grant_request(spec: GrantSpec) -> tuple[Any, ...]:
    """``GrantRegistry.createGrant``'s request struct for ``spec``, in ABI order."""
    return (
        code_to_bytes32(spec.owner_org),
        code_to_bytes32(spec.grantee_org),
        int(spec.purpose),
        [code_to_bytes32(t) for t in spec.record_types],
        [code_to_bytes32(c) for c in spec.communities],
        hex_to_bytes32(spec.record_id) if spec.record_id else ZERO32,
        spec.valid_from,
        spec.valid_until,
    )


def _organisation(org_id: str, raw: Any, public_key: bytes) -> Organisation:
    kind, suspended, signer, key_count, communities = raw
    return Organisation(
        org_id=org_id,
        kind=OrganisationKind(kind),
        signer=str(signer),
        suspended=bool(suspended),
        communities=tuple(bytes32_to_code(c) for c in communities),
        key_count=int(key_count),
        public_key=public_key,
    )


def _grant(grant_id: int, raw: Any) -> Grant:
    (
        owner,
        grantee,
        record_id,
        purpose,
        by_admin,
        granted_by,
        valid_from,
        valid_until,
        created_block,
        revoked_block,
        record_types,
        communities,
    ) = raw
    spec = GrantSpec(
        owner_org=bytes32_to_code(owner),
        grantee_org=bytes32_to_code(grantee),
        purpose=Purpose(purpose),
        valid_from=int(valid_from),
        valid_until=int(valid_until),
        record_types=tuple(bytes32_to_code(t) for t in record_types),
        communities=tuple(bytes32_to_code(c) for c in communities),
        record_id=bytes(record_id).hex() if bytes(record_id) != ZERO32 else None,
    )
    return Grant(
        grant_id=grant_id,
        spec=spec,
        granted_by=str(granted_by),
        by_admin=bool(by_admin),
        created_block=int(created_block),
        revoked_block=int(revoked_block),
    )
