"""``ledger demo``: the main job on embedded defaults, told as a story, then tidied up.

Brings up the devnet (unless one already runs), deploys (or reuses) the contracts, registers the
three demo organisations, starts the gateway in this process on a loopback port, and then:

1. the police station, the property company and the neighbourhood committee push records from their
   own export formats (the shared samples through the adapters, else built-in exports) over HTTP,
   and the demo waits for their anchors;
   then each registers the same residents and flats again (exports built to overlap, since the
   samples share none), and each department is told how much of its data another already holds;
2. the police grants the committee access to its incidents for elderly care, on chain;
3. the committee reads a police incident: masked fields, the access-log entry, both proofs' URLs;
4. the property company, holding no grant, is refused;
5. the police revokes the grant and the committee's next read is refused;
6. under a new grant the committee listens to the feed (SSE) and sees a new incident arrive;
7. where to check, then the gateway and the devnet it started are stopped.

Every step says where it can be checked (a gateway URL, a block and transaction, a ``ledger``
command). Safe to re-run: state is kept in ``LEDGER_HOME``, records already pushed come back as
``unchanged``, grants are new each run. A failing step is reported as one line (exit status 1) after
the gateway and the devnet are stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from adapters import AdapterError, CanonicalRecord
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.devnet import dev_account, free_port
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.signers import Signer
from ledger_api.cli.context import CliContext, enter_demo_mode
from ledger_api.cli.demo_data import (
    COMMITTEE,
    DEFAULT_SAMPLES_DIR,
    POLICE,
    PROPERTY,
    DepartmentExport,
    department_exports,
    fresh_incident_export,
    overlap_exports,
)
from ledger_api.cli.local_gateway import LocalGateway
from ledger_api.errors import LedgerError
from ledger_api.provision import ADMIN_ACCOUNT, COMMUNITY_B, DEMO_ORGANISATIONS, provision

PUSH_CHUNK = 500
ANCHOR_TIMEOUT_S = 120.0
FEED_TIMEOUT_S = 60.0
#: A refused read: 403 when the caller holds a grant from the owner that does not cover it, else 404
#: (without any grant the record does not exist for the caller). Anything else is a failure of the demo.
REFUSALS = (403, 404)


class DemoError(LedgerError):
    """A step of the story did not turn out as it should."""


def register(commands: Any) -> None:
    demo = commands.add_parser("demo", help="run the end-to-end story on the local devnet and tidy up")
    demo.add_argument(
        "--samples",
        type=Path,
        default=DEFAULT_SAMPLES_DIR,
        help=f"folder of department sample exports (default {DEFAULT_SAMPLES_DIR}; built-in records when absent)",
    )
    demo.set_defaults(handler=run_demo)


class _Steps:
    """Numbers the steps as they are printed, and names the current one when something fails."""

    def __init__(self) -> None:
        self.number = 0
        self.title = "start-up"

    def __call__(self, text: str) -> None:
        self.number += 1
        self.title = text
        print(f"\n[{self.number}] {text}", flush=True)

    @contextmanager
    def failing_as_one_line(self) -> Iterator[None]:
        try:
            yield
        except (LedgerError, AdapterError) as exc:
            raise DemoError(f"demo step {self.number} ({self.title}) failed: {exc}") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise DemoError(f"demo step {self.number} ({self.title}) failed: {type(exc).__name__}: {exc}") from exc


def run_demo(args: argparse.Namespace) -> int:
    enter_demo_mode()
    steps = _Steps()
    base = CliContext.from_args(args)
    node = base.devnet()
    already_running = node.status().running
    with steps.failing_as_one_line():
        steps("Local devnet (anvil, state kept in " + str(node.state_path) + ")")
        status = node.up()
    print(
        f"    {'reusing running' if already_running else 'started'} devnet at {status.rpc_url}, "
        f"chain {status.chain_id}, block {status.block_number}"
    )
    try:
        # Everything below talks to this devnet, whatever LEDGER_RPC_URL says.
        ctx = CliContext(settings=base.settings.model_copy(update={"rpc_url": status.rpc_url}), rpc_url=status.rpc_url)
        with steps.failing_as_one_line():
            _story(ctx, steps, samples=args.samples)
    finally:
        if not already_running:
            node.down()
            print("Stopped the devnet this demo started (its state is kept; `ledger devnet up` resumes it).")
        else:
            print("Left the devnet running, as it was found.")
    print("Demo finished.")
    return 0


def _story(ctx: CliContext, steps: _Steps, *, samples: Path) -> None:
    steps("Contracts and the demo organisations: a police station, a property company, a neighbourhood committee")
    provisioned = provision(settings=ctx.settings, transactor=ctx.transactor)
    deployment = provisioned.deployment
    print(
        f"    {'deployed' if provisioned.deployed_now else 'reused'}: "
        + ", ".join(f"{k} {v}" for k, v in deployment.addresses.items())
    )
    print(f"    check: {ctx.deployments.path(deployment.chain_id)}")
    for action in provisioned.actions or ("nothing to change: already registered",):
        print(f"    + {action}")
    chain = ctx.chain
    for org in chain.organisations():
        print(f"    {org.org_id:<14} {org.kind.name.lower():<10} communities {','.join(org.communities)}")
    print("    check: ledger org list")
    keys_file = ctx.settings.home / "demo-api-keys.json"
    keys_file.write_text(json.dumps(provisioned.api_keys, indent=2))
    keys_file.chmod(0o600)

    steps("The gateway: HTTP API, anchoring worker and access log, in this process")
    port = ctx.settings.port if _port_free(ctx.settings.host, ctx.settings.port) else free_port()
    gateway = LocalGateway(settings=ctx.settings, host=ctx.settings.host, port=port)
    gateway.start()
    try:
        url = gateway.url
        print(f"    serving {url}/v1 (OpenAPI: {url}/v1/openapi.json)")
        print(f"    API keys of the demo organisations (new each run, the previous run's revoked): {keys_file}")
        print(f'    check: curl -H "Authorization: Bearer <key>" {url}/v1/me')
        apis = {
            org: httpx.Client(base_url=url, timeout=60.0, headers={"Authorization": f"Bearer {key}"})
            for org, key in provisioned.api_keys.items()
        }
        try:
            _with_gateway(chain, steps, apis, url=url, samples=samples)
        finally:
            for api in apis.values():
                api.close()
    finally:
        gateway.stop()
        print("\nStopped the gateway.")
    _audit(ctx, steps)
    served_again = f"http://{ctx.settings.host}:{ctx.settings.port}"
    print(
        f"`make run` serves this ledger again on {served_again} (API keys rewritten to "
        + (f"{keys_file}), so the URLs above answer there." if port == ctx.settings.port else f"{keys_file}).")
    )


def _with_gateway(chain: LedgerChain, steps: _Steps, apis: dict[str, httpx.Client], *, url: str, samples: Path) -> None:
    pushed = _push_exports(steps, apis, url=url, samples=samples)
    _collected_twice(steps, apis, url=url)
    target = _incident_for_the_committee(pushed[POLICE])
    police = dev_account(next(o.account for o in DEMO_ORGANISATIONS if o.org_id == POLICE))
    steps("The police grants the committee its incidents in community " + COMMUNITY_B + ", for elderly care")
    grant_id = _grant(chain, police)
    _granted_read(steps, apis, target, grant_id=grant_id, url=url)
    _print_overlap(apis[COMMITTEE], COMMITTEE, until_covered_by=grant_id)
    _refused_reads(chain, steps, apis, target, police=police, grant_id=grant_id)
    with _within_police_reach(chain, pushed[COMMITTEE]) as hazard:
        _emergency_read(steps, apis, hazard, url=url)
    _feed(chain, steps, apis, police=police, url=url)
    steps("Where to check")
    print(f"    access-log heads (anchored on chain): GET {url}/v1/access-log/heads")
    print("    grants and organisations: ledger grants list --all; ledger org list")


def _push_exports(
    steps: _Steps, apis: dict[str, httpx.Client], *, url: str, samples: Path
) -> dict[str, list[CanonicalRecord]]:
    """Each organisation pushes its export; wait until every organisation's records are anchored."""
    exports, from_samples = department_exports(samples)
    source = f"their sample exports in {samples}" if from_samples else f"built-in exports ({samples} is absent)"
    steps(f"The three organisations push records through the HTTP API, from {source}")
    pushed: dict[str, list[CanonicalRecord]] = {}
    for export in exports:
        pushed[export.owner_org] = _push_export(apis[export.owner_org], export)
    for org, records in pushed.items():
        status = _wait_anchored(apis[org], records[-1].assigned_record_id)
        print(
            f"    {org:<14} anchored: batch root {status['batch_root']} ({status['batch_size']} records) in block "
            f"{status['block_number']}, tx {status['transaction']}"
        )
    print(f"    check: GET {url}/v1/records/{pushed[POLICE][-1].assigned_record_id}/status (as {POLICE})")
    return pushed


def _collected_twice(steps: _Steps, apis: dict[str, httpx.Client], *, url: str) -> None:
    """Each department registers the same people and flats again; each is told what others already hold."""
    steps("The departments register the same residents and flats again (built to overlap: the samples share none)")
    for export in overlap_exports():
        records = _push_export(apis[export.owner_org], export)
        _wait_anchored(apis[export.owner_org], records[-1].assigned_record_id)
    for org in (COMMITTEE, POLICE, PROPERTY):
        _print_overlap(apis[org], org)
    print(f"    check: GET {url}/v1/overlap/mine (as each department); the whole matrix: GET {url}/v1/overlap "
          "(auditor and admin organisations), or `ledger audit overlap`")  # fmt: skip


_KIND_WORDS = {"id_number": "people", "address": "flats"}


def _print_overlap(api: httpx.Client, org: str, *, until_covered_by: int | None = None) -> None:
    """What ``GET /v1/overlap/mine`` tells ``org`` (after the follower has seen ``until_covered_by``)."""
    deadline = time.monotonic() + ANCHOR_TIMEOUT_S
    while True:
        answer = api.get("/v1/overlap/mine")
        if answer.status_code != 200:
            raise DemoError(f"{org}'s overlap answered {_problem(answer)}")
        mine: dict[str, Any] = answer.json()
        granted = {g for other in mine["others"] for g in other["grants"]}
        if until_covered_by is None or until_covered_by in granted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for other in mine["others"]:
        kind = _KIND_WORDS.get(other["kind"], other["kind"])
        share = other["share_of_mine"]["pct"]
        grants = ", ".join(f"#{g}" for g in other["grants"])
        covered = f"grant {grants} covers {_shown(other['covered_by_grants'])}" if grants else "no grant covers them"
        print(
            f"    {org}: of its {mine['subjects'][other['kind']]} {kind}, {other['org_id']} already holds "
            f"{_shown(other['held'])}" + (f" ({share:.1f} %)" if share is not None else "") + f"; today {covered}"
        )
    for ask in mine["ask_for"]:
        kinds = ", ".join(_KIND_WORDS.get(k, k) for k in ask["kinds"])
        print(
            f"      could ask {ask['owner_org']} for a grant ({kinds} in {', '.join(ask['communities'])}) "
            "instead of collecting them again"
        )


def _shown(cell: dict[str, Any]) -> str:
    """A count cell of an overlap answer as shown: the number, or "< 5" / "hidden" when suppressed."""
    return str(cell["shown_as"] if cell["suppressed"] else cell["count"])


def _granted_read(
    steps: _Steps, apis: dict[str, httpx.Client], target: CanonicalRecord, *, grant_id: int, url: str
) -> None:
    record_id = target.assigned_record_id
    steps(f"The committee reads police incident {record_id[:16]}… for elderly care under grant #{grant_id}")
    read = _read(apis[COMMITTEE], record_id, grant=grant_id)
    if read.status_code != 200:
        raise DemoError(f"the committee's read answered {_problem(read)}")
    body = read.json()
    record, access = body["record"], body["access"]
    print(
        f"    200 OK: {record['record_type']} of {record['occurred_at']} at {record['location']['text']}, "
        f"{record['attributes'].get('category', '')}/{record['attributes'].get('subcategory', '')}"
    )
    for path in body["masked_fields"] or ["(none)"]:
        print(f"    masked for elderly care: {path} = {_field(record, path)}")
    print(
        f"    access-log entry #{access['entry_index']} (grant #{access['grant_id']}, purpose {access['purpose']}, "
        f"grant checked at block {access['checked_block']})"
    )
    print(f"    record proof:       GET {url}/v1/records/{target.assigned_record_id}/proof")
    entry_proof = f"{url}/v1/access-log/entries/{access['entry_index']}/proof"
    head = _wait_entry_anchored(apis[COMMITTEE], f"/v1/access-log/entries/{access['entry_index']}/proof")
    print(f"    access-entry proof: GET {entry_proof}")
    print(
        f"      included in access-log head #{head['index']} (log size {head['size']}), anchored in block "
        f"{head['block_number']}, tx {head['transaction']}"
    )


def _refused_reads(
    chain: LedgerChain,
    steps: _Steps,
    apis: dict[str, httpx.Client],
    target: CanonicalRecord,
    *,
    police: Signer,
    grant_id: int,
) -> None:
    """No grant, then a revoked grant: both reads are refused."""
    steps(f"{PROPERTY} holds no grant from the police and reads the same incident")
    refused = _read(apis[PROPERTY], target.assigned_record_id, grant=None)
    if refused.status_code not in REFUSALS:
        raise DemoError(f"a read without a grant answered {_problem(refused)}, not a refusal")
    print(f"    refused: {_problem(refused)}")

    steps(f"The police revokes grant #{grant_id}; the committee reads again")
    receipt = chain.revoke_grant(signer=police, grant_id=grant_id)
    print(f"    revoked in block {receipt['blockNumber']}, tx {_hex(receipt['transactionHash'])}")
    again = _read(apis[COMMITTEE], target.assigned_record_id, grant=grant_id)
    if again.status_code not in REFUSALS:
        raise DemoError(f"a read under the revoked grant answered {_problem(again)}, not a refusal")
    print(f"    refused at once: {_problem(again)}")


#: What the demo's break-glass read states (an emergency read without a grant must: DESIGN.md, Privacy).
EMERGENCY_STATEMENT = {
    "purpose": "emergency_response",
    "reason_class": "fire_or_hazard",
    "reason": "smoke reported in the stairwell named by the hazard report",
    "incident_ref": "110-DEMO-0001",
}


@contextlib.contextmanager
def _within_police_reach(chain: LedgerChain, records: list[CanonicalRecord]) -> Iterator[CanonicalRecord]:
    """A committee record of a community the police serves (a break-glass read reaches no other); with
    exports of communities it does not serve, the admin adds the record's community to the police's for
    the read, and takes it away again (so that the demo's organisations stay as provisioned)."""
    served = next(o.communities for o in DEMO_ORGANISATIONS if o.org_id == POLICE)
    reachable = next((r for r in records if r.community_code in served), None)
    if reachable is not None:
        yield reachable
        return
    record, admin = records[0], dev_account(ADMIN_ACCOUNT)
    chain.set_communities(signer=admin, org_id=POLICE, communities=(*served, record.community_code))
    print(f"    (the admin adds community {record.community_code} to those {POLICE} serves, for this step)")
    try:
        yield record
    finally:
        chain.set_communities(signer=admin, org_id=POLICE, communities=served)


def _emergency_read(steps: _Steps, apis: dict[str, httpx.Client], hazard: CanonicalRecord, *, url: str) -> None:
    steps(f"The police reads a committee {hazard.record_type} in an emergency, with no grant")
    urgent = apis[POLICE].get(f"/v1/records/{hazard.assigned_record_id}", params=EMERGENCY_STATEMENT)
    if urgent.status_code != 200:
        raise DemoError(f"the emergency read answered {_problem(urgent)}")
    flagged = urgent.json()["access"]
    print(
        f"    200 OK, logged as emergency read #{flagged['entry_index']} (emergency={flagged['emergency']}): "
        "police stations may read in an emergency, and every such read awaits review"
    )
    print(f"    check: GET {url}/v1/review/emergency-reads (as {COMMITTEE}, the record's owner)")


def _feed(chain: LedgerChain, steps: _Steps, apis: dict[str, httpx.Client], *, police: Signer, url: str) -> None:
    steps("Under a new grant the committee subscribes to the feed; the police pushes a new incident")
    feed_grant = _grant(chain, police)
    seconds, event = _feed_delivers(apis[COMMITTEE], apis[POLICE], url=url)
    print(
        f"    the feed delivered {event['record_type']} {event['record_id'][:16]}… (block {event['block_number']}) "
        f"{seconds:.2f} s after the push"
    )
    chain.revoke_grant(signer=police, grant_id=feed_grant)
    print(f"    grant #{feed_grant} revoked again: the next run grants afresh")


def _push_export(api: httpx.Client, export: DepartmentExport) -> list[CanonicalRecord]:
    report, parsed = export.read()
    statuses: Counter[str] = Counter()
    records: list[CanonicalRecord] = []
    for start in range(0, len(parsed), PUSH_CHUNK):
        chunk = parsed[start : start + PUSH_CHUNK]
        answer = api.post("/v1/records", json={"records": [r.to_json_dict() for r in chunk]})
        if answer.status_code != 202:
            raise DemoError(f"{export.owner_org}'s push answered {_problem(answer)}")
        statuses.update(r["status"] for r in answer.json()["records"])
        records.extend(_with_assigned_ids(chunk, answer))
    if not records:
        raise DemoError(f"{export.name} holds no valid record")
    print(
        f"    {export.owner_org:<14} {export.name} ({export.adapter}): {report.rows} rows, {report.valid} valid, "
        f"{len(report.duplicates)} duplicate, {len(report.bad)} bad"
    )
    print(
        f"    {'':<14} POST /v1/records: "
        + ", ".join(f"{statuses[s]} {s}" for s in ("created", "new_version", "unchanged") if statuses[s])
    )
    return records


def _with_assigned_ids(records: list[CanonicalRecord], answer: httpx.Response) -> list[CanonicalRecord]:
    """The records as the gateway stored them: a department holds no record-id key, so the owner's gateway
    assigns each id (keyed, DESIGN.md Privacy) and answers with it, in push order."""
    outcomes = answer.json()["records"]
    return [r.model_copy(update={"record_id": o["record_id"]}) for r, o in zip(records, outcomes, strict=True)]


def _wait_anchored(api: httpx.Client, record_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + ANCHOR_TIMEOUT_S
    while True:
        answer = api.get(f"/v1/records/{record_id}/status")
        if answer.status_code != 200:
            raise DemoError(f"the status of {record_id} answered {_problem(answer)}")
        status: dict[str, Any] = answer.json()
        if status["state"] == "anchored":
            return status
        if time.monotonic() > deadline:
            raise DemoError(f"record {record_id} was not anchored within {ANCHOR_TIMEOUT_S:.0f}s")
        time.sleep(0.2)


def _incident_for_the_committee(incidents: list[CanonicalRecord]) -> CanonicalRecord:
    """An incident in the committee's community naming a person by ID number (so masking shows)."""
    in_community = [r for r in incidents if r.community_code == COMMUNITY_B]
    with_ids = [r for r in in_community if any(s.id_number for s in r.subjects)]
    if not (with_ids or in_community):
        raise DemoError(f"the police export holds no incident in community {COMMUNITY_B}")
    return (with_ids or in_community)[0]


def _grant(chain: LedgerChain, police: Any) -> int:
    now = chain.latest_timestamp()
    spec = GrantSpec(
        owner_org=POLICE,
        grantee_org=COMMITTEE,
        purpose=Purpose.ELDERLY_CARE,
        valid_from=now,
        valid_until=now + 30 * 86400,
        record_types=("incident",),
        communities=(COMMUNITY_B,),
    )
    grant_id, receipt = chain.create_grant(signer=police, spec=spec)
    print(
        f"    grant #{grant_id}: {POLICE} -> {COMMITTEE}, incidents in {COMMUNITY_B}, elderly care, 30 days; "
        f"signed by the police station's own key, block {receipt['blockNumber']}, tx {_hex(receipt['transactionHash'])}"
    )
    print("    check: ledger grants list --all")
    return grant_id


def _read(api: httpx.Client, record_id: str, *, grant: int | None) -> httpx.Response:
    params: dict[str, str | int] = {"purpose": "elderly_care"}
    if grant is not None:
        params["grant"] = grant
    return api.get(f"/v1/records/{record_id}", params=params)


def _problem(answer: httpx.Response) -> str:
    """``403 Forbidden: detail`` from an RFC 9457 problem answer."""
    try:
        body = answer.json()
    except ValueError:
        body = {"detail": answer.text[:200]}
    detail = body.get("detail") if isinstance(body, dict) else None
    title = body.get("title") if isinstance(body, dict) else None
    return f"{answer.status_code} {title or answer.reason_phrase}: {detail or answer.text[:200]}"


def _field(record: dict[str, Any], path: str) -> object:
    """The value at ``subjects[1].id_number``-style paths of a record document."""
    value: Any = record
    for part in path.split("."):
        name, _, index = part.partition("[")
        value = value.get(name) if isinstance(value, dict) else None
        if index.rstrip("]").isdigit():  # not a quoted key (attributes["…"]): shown as None
            position = int(index.rstrip("]"))
            value = value[position] if isinstance(value, list) and position < len(value) else None
    return value


def _wait_entry_anchored(api: httpx.Client, path: str) -> dict[str, Any]:
    """Wait until the access-log entry is under an anchored tree head; that head."""
    deadline = time.monotonic() + ANCHOR_TIMEOUT_S
    while True:
        answer = api.get(path)
        if answer.status_code == 200 and answer.json().get("head"):
            head: dict[str, Any] = answer.json()["head"]
            return head
        if answer.status_code not in (200, 409):
            raise DemoError(f"the access-entry proof answered {_problem(answer)}")
        if time.monotonic() > deadline:
            raise DemoError(f"the access-log entry was not anchored within {ANCHOR_TIMEOUT_S:.0f}s")
        time.sleep(0.2)


def _feed_delivers(listener: httpx.Client, police: httpx.Client, *, url: str) -> tuple[float, dict[str, Any]]:
    """Subscribe to the feed, push a new incident, and time its arrival: (seconds, the event)."""
    export = fresh_incident_export(now=datetime.now(UTC))
    _report, records = export.read()
    (incident,) = records
    assigned: list[str] = []  # the incident's id, once the gateway answers the push with it
    lines: queue.Queue[str | BaseException] = queue.Queue()
    # A connection of its own, so that closing it ends the stream whatever the listener is waiting for.
    feed = httpx.Client(
        base_url=str(listener.base_url), headers=dict(listener.headers), timeout=httpx.Timeout(10.0, read=None)
    )

    def listen() -> None:
        try:
            with feed.stream("GET", "/v1/feed", headers={"Accept": "text/event-stream"}) as stream:
                if stream.status_code != 200:
                    stream.read()
                    raise DemoError(f"the feed answered {_problem(stream)}")
                for line in stream.iter_lines():
                    lines.put(line)
                    if assigned and assigned[0] in line:
                        return  # leaving the block closes the stream
        except BaseException as exc:  # handed to the main thread, which reports it
            lines.put(exc)

    thread = threading.Thread(target=listen, name="feed", daemon=True)
    thread.start()
    try:
        first = lines.get(timeout=FEED_TIMEOUT_S)  # "retry: …": the stream is open, nothing is missed from now
        if isinstance(first, BaseException):
            raise first
        print(f"    subscribed: GET {url}/v1/feed (Accept: text/event-stream), as {COMMITTEE}")
        pushed_at = time.monotonic()
        answer = police.post("/v1/records", json={"records": [incident.to_json_dict()]})
        if answer.status_code != 202:
            raise DemoError(f"the police's push answered {_problem(answer)}")
        (incident,) = _with_assigned_ids([incident], answer)
        assigned.append(incident.assigned_record_id)
        print(f"    {POLICE} pushed {export.name} ({assigned[0][:16]}…): {answer.json()['records'][0]['status']}")
        deadline = pushed_at + FEED_TIMEOUT_S
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(line, BaseException):
                raise line
            if line.startswith("data:"):
                event: dict[str, Any] = json.loads(line.removeprefix("data:"))
                if event.get("record_id") == assigned[0]:
                    return time.monotonic() - pushed_at, event
    except queue.Empty:
        raise DemoError(f"the feed did not deliver the new incident within {FEED_TIMEOUT_S:.0f}s") from None
    finally:
        feed.close()
        thread.join(timeout=10)


def _audit(ctx: CliContext, steps: _Steps) -> None:
    """The auditor's side, with the very commands an auditor runs: chain and storage only, then a bundle
    checked offline, then the report. Run once the gateway has stopped, so storage holds still."""
    steps("The auditor checks the whole trail from the chain and the storage only (not the gateway's database)")
    home = ctx.settings.home
    bundle, report = home / "demo-audit.bundle", home / "audit-report"
    for action in (
        ["verify", "--rpc", ctx.rpc_url],
        ["export", "--rpc", ctx.rpc_url, "--out", str(bundle)],
        ["verify", "--bundle", str(bundle)],
        ["report", "--rpc", ctx.rpc_url, "--out", str(report)],
        ["overlap", "--rpc", ctx.rpc_url],
    ):
        print(f"    $ ledger audit {' '.join(action)}")
        done = subprocess.run(
            [sys.executable, "-m", "ledger_api.cli", "audit", *action],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        for line in done.stdout.splitlines():
            print(f"      {line}")
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise DemoError(f"ledger audit {action[0]} exited with status {done.returncode}: {last[0]}")
    print(f"    check: open {report / 'audit-report.html'}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) != 0


def _hex(value: Any) -> str:
    text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
    return text if text.startswith("0x") else "0x" + text
