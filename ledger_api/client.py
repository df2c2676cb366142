"""A thin Python client of the gateway's HTTP API, for department systems and the ``ledger`` CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.canonical import CanonicalRecord
from ledger_api.errors import LedgerError
from ledger_api.records.commitment import CommitmentOpening, verify_opening


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


class GatewayClient:
    """``base_url`` is the gateway's root (``http://host:8000``); ``http`` may supply a configured
    ``httpx.Client`` (custom TLS, proxies, or an in-process test client) whose base URL is that root."""

    def __init__(
        self, *, base_url: str = "", api_key: str, timeout_s: float = 60.0, http: httpx.Client | None = None
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._headers = {"Authorization": f"Bearer {api_key}"}

    def close(self) -> None:
        self._http.close()

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

    def read(self, record_id: str, *, purpose: str, grant: int | None = None) -> dict[str, Any]:
        """Read a record (logged) and check it, masked fields included, against its content commitment.

        The commitment checked is the one the answer names; compare it with the record's leaf in
        ``GET /records/{id}/proof``, whose inclusion is checked against the root anchored on chain."""
        params: dict[str, str | int] = {"purpose": purpose}
        if grant is not None:
            params["grant"] = grant
        body: dict[str, Any] = self._request("GET", f"/records/{record_id}", params=params)
        anchor = body["anchor"]
        if not verify_opening(body["record"], CommitmentOpening.from_json(anchor["opening"]), anchor["commitment"]):
            raise CommitmentNotOpened(
                f"record {record_id} v{body['version']} does not open commitment {anchor['commitment']}"
            )
        return body

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
