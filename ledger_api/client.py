"""A thin Python client of the gateway's HTTP API, for department systems and the ``ledger`` CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.canonical import CanonicalRecord
from ledger_api.chain.record_anchors import RecordAnchorsReader
from ledger_api.errors import ConfigurationError, LedgerError
from ledger_api.merkle import MerkleProofError, decode_proof, verify_inclusion
from ledger_api.records.commitment import CommitmentOpening, verify_opening
from ledger_api.records.leaves import RecordLeaf


class GatewayClientError(LedgerError):
    """The gateway answered with a problem (RFC 9457); ``problem`` holds its body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "error"
        errors = problem.get("errors") or []
        first = f"; first: {errors[0]}" if errors else ""
        super().__init__(f"gateway answered {status}: {detail}{first}")


class CommitmentNotOpened(LedgerError):
    """The gateway answered a record that does not open the commitment it named."""


class RecordNotOnChain(LedgerError):
    """The record a gateway answered is not the one anchored on chain: its leaf (commitment, ciphertext
    hash, id, version, owner) is not included under a batch root the owner anchored, as read from the
    caller's own chain node."""


class GatewayClient:
    """``base_url`` is the gateway's root (``http://host:8000``); ``http`` may supply a configured
    ``httpx.Client`` (custom TLS, proxies, or an in-process test client) whose base URL is that root.

    With ``rpc_url`` (a chain node the caller trusts) and ``record_anchors`` (the ``RecordAnchors`` address of
    the deployment), :meth:`read` also checks the answer against the chain itself, not only against what the
    gateway says was anchored."""

    def __init__(
        self,
        *,
        base_url: str = "",
        api_key: str,
        timeout_s: float = 60.0,
        http: httpx.Client | None = None,
        rpc_url: str | None = None,
        record_anchors: str | None = None,
    ) -> None:
        if (rpc_url is None) != (record_anchors is None):
            raise ConfigurationError("give both rpc_url and record_anchors (the RecordAnchors address), or neither")
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._anchors = (
            RecordAnchorsReader.from_url(rpc_url=rpc_url, address=record_anchors)
            if rpc_url is not None and record_anchors is not None
            else None
        )

    def close(self) -> None:
        self._http.close()
        if self._anchors is not None:
            self._anchors.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text[:200]}
            raise GatewayClientError(response.status_code, body if isinstance(body, dict) else {"detail": body})
        return response.json()

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            headers = {**self._headers, **kwargs.pop("headers", {})}
            response = self._http.request(method, "/v1" + url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise LedgerError(f"cannot reach the gateway at {self._http.base_url}: {exc}") from exc
        return self._check(response)

    def whoami(self) -> str:
        return str(self._request("GET", "/me")["org_id"])

    def push(self, records: Sequence[CanonicalRecord]) -> dict[str, Any]:
        body = {"records": [r.to_json_dict() for r in records]}
        result: dict[str, Any] = self._request("POST", "/records", json=body)
        return result

    def status(self, record_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/records/{record_id}/status")
        return result

    def read(
        self,
        record_id: str,
        *,
        purpose: str,
        grant: int | None = None,
        reason_class: str | None = None,
        reason: str | None = None,
        incident_ref: str | None = None,
    ) -> dict[str, Any]:
        """Read a record (logged) and check it, masked fields included, against its content commitment.

        An emergency read without a grant states ``reason_class``, ``reason`` and ``incident_ref``.

        Without a chain node (``rpc_url``) the commitment checked is the one the answer names. With one, that
        commitment must also be the record's leaf in ``GET /records/{id}/proof``, whose RFC 9162 inclusion is
        checked against the batch root the owner anchored in ``RecordAnchors``, read over ``rpc_url``
        (:class:`RecordNotOnChain` otherwise). A version not anchored yet answers 409
        (:class:`GatewayClientError`): retry once it is."""
        params: dict[str, str | int] = {"purpose": purpose}
        stated = {"grant": grant, "reason_class": reason_class, "reason": reason, "incident_ref": incident_ref}
        params.update({name: value for name, value in stated.items() if value is not None})
        body: dict[str, Any] = self._request("GET", f"/records/{record_id}", params=params)
        anchor = body["anchor"]
        if not verify_opening(body["record"], CommitmentOpening.from_json(anchor["opening"]), anchor["commitment"]):
            raise CommitmentNotOpened(
                f"record {record_id} v{body['version']} does not open commitment {anchor['commitment']}"
            )
        if self._anchors is not None:
            self._check_on_chain(self._anchors, body)
        return body

    def _check_on_chain(self, anchors: RecordAnchorsReader, body: dict[str, Any]) -> None:
        """The opened commitment is the leaf of this record version included under a root anchored on chain."""
        record_id, version, owner = body["record_id"], body["version"], body["owner_org"]
        named = f"record {record_id} v{version}"
        proof: dict[str, Any] = self._request("GET", f"/records/{record_id}/proof", params={"version": version})
        try:
            leaf = RecordLeaf(
                record_id=record_id, version=version, owner_org=owner,
                ciphertext_hash=body["anchor"]["ciphertext_hash"], commitment=body["anchor"]["commitment"],
            )  # fmt: skip
            if proof["leaf"] != vars(leaf):
                raise RecordNotOnChain(
                    f"{named}: the proof's leaf {proof['leaf']} is not the record read ({vars(leaf)})"
                )
            root = bytes.fromhex(proof["batch_root"])
            if body["anchor"]["batch_root"] not in (None, proof["batch_root"]):
                raise RecordNotOnChain(
                    f"{named}: read under batch {body['anchor']['batch_root']}, proved under {root.hex()}"
                )
            verify_inclusion(
                leaf.leaf_hash(), proof["leaf_index"], proof["tree_size"], decode_proof(proof["inclusion_path"]), root
            )
        except (MerkleProofError, KeyError, TypeError, ValueError) as exc:
            raise RecordNotOnChain(f"{named}: the inclusion proof does not hold: {exc}") from exc
        on_chain = anchors.batch(owner_org=owner, root=root)
        if on_chain is None:
            raise RecordNotOnChain(f"{named}: {owner} anchored no batch {root.hex()} at {anchors.address}")
        if on_chain.size != proof["tree_size"]:
            raise RecordNotOnChain(
                f"{named}: batch {root.hex()} has {on_chain.size} leaves on chain, the proof says {proof['tree_size']}"
            )

    def import_file(
        self, adapter: str, data: bytes, *, file_name: str, community: str, **params: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST",
            f"/import/{adapter}",
            content=data,
            params={"file_name": file_name, "community": community, **params},
            headers={"Content-Type": "application/octet-stream"},
        )
        return result
