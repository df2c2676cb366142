"""``ledger bench``: end-to-end figures on a devnet and gateway of its own, printed, never asserted.

Ingest: records pushed over HTTP in batches by concurrent clients, through encryption, storage,
index and batch anchoring, timed from the first push until every record is anchored. Latency is
push → anchored per record (receive time to the anchoring batch's confirmation, from the index).
Naive baseline: the same kind of records anchored one transaction each, each sent and confirmed
before the next, as a straightforward web3 integration behaves. Gas per record comes from the
receipts of the anchoring transactions.

Reads: after the ingest part, the owner grants a second organisation (the bench's grantee) its
records for one purpose, on chain; then that grantee issues logged reads
(``GET /v1/records/{id}?purpose=…&grant=…``) from concurrent HTTP clients. Every read checks the grant
against chain state, opens the blob, masks and commits its access entry before it answers, so the rate
and latency include all of that. Targets (≥ 500 reads/s, p95 ≤ 1.5 s with 1 s blocks) are printed,
never asserted.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from adapters.canonical import CanonicalRecord, Location, RecordType, Source
from ledger_api.chain.anchor_writer import AnchorWriter
from ledger_api.chain.client import LedgerChain
from ledger_api.chain.clique import CliqueNetwork
from ledger_api.chain.devnet import Devnet, dev_account, free_port
from ledger_api.chain.encoding import Purpose
from ledger_api.chain.models import GrantSpec
from ledger_api.chain.rpc import JsonRpc
from ledger_api.chain.transactor import Transactor
from ledger_api.index.database import make_engine
from ledger_api.provision import DEMO_ORGANISATIONS, provision
from ledger_api.settings import Settings

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
BENCH_ORG = DEMO_ORGANISATIONS[1]  # the property company: door-access events are its volume
BENCH_GRANTEE = DEMO_ORGANISATIONS[2]  # the neighbourhood committee reads them under a grant
BENCH_READ_PURPOSE = Purpose.COMMUNITY_GOVERNANCE


@dataclass(frozen=True, kw_only=True)
class BenchResult:
    records: int
    batch_size: int
    clients: int
    block_time_s: float
    ingest_records_per_s: float
    acknowledge_records_per_s: float
    naive_records_per_s: float
    naive_records: int
    speedup: float
    anchor_latency_p50_s: float
    anchor_latency_p95_s: float
    gas_per_record: float
    naive_gas_per_record: float
    batches: int
    reads: int = 0
    read_clients: int = 0
    reads_per_s: float = float("nan")
    read_latency_p50_s: float = float("nan")
    read_latency_p95_s: float = float("nan")
    engine: str = "anvil"
    nodes: int = 1


def synthetic_events(count: int, *, owner: str, start: int = 0) -> list[CanonicalRecord]:
    """Access events as a property company's system would push them: no record id (the owner's gateway
    assigns the keyed id; the benchmark measures that too)."""
    base = dt.datetime(2025, 3, 1, 8, 0, tzinfo=SHANGHAI)
    records = []
    for n in range(start, start + count):
        native_id = f"BENCH-{n:09d}"
        records.append(
            CanonicalRecord(
                record_type=RecordType.ACCESS_EVENT,
                community_code="330102001",
                owner_org=owner,
                source=Source(system="property.access_events", native_id=native_id, file="bench.jsonl", row=n + 1),
                occurred_at=base + dt.timedelta(seconds=n),
                location=Location(building=f"{n % 40 + 1}幢", unit=f"{n % 4 + 1}单元", text="翠苑一区东门"),
                attributes={"door": f"D{n % 12:02d}", "method": "card", "direction": "in" if n % 2 else "out"},
            )
        )
    return records


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class _Gateway:
    def __init__(self, *, settings: Settings, port: int) -> None:
        env = {
            **os.environ,
            "LEDGER_HOME": str(settings.home),
            "LEDGER_RPC_URL": settings.rpc_url,
            "LEDGER_ANCHOR_MAX_WAIT_S": str(settings.anchor_max_wait_s),
            "LEDGER_CHAIN_ENGINE": settings.chain_engine,
        }
        self.url = f"http://127.0.0.1:{port}"
        self._log = (settings.home / "gateway.log").open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ledger_api.cli", "serve", "--port", str(port)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v1/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the gateway did not become ready; see {settings.home / 'gateway.log'}")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._log.close()


class _Chain(Protocol):
    @property
    def rpc_url(self) -> str: ...
    def up(self) -> object: ...
    def down(self) -> bool: ...


def _chain(*, engine: str, nodes: int, home: Path, block_time_s: float) -> _Chain:
    if engine == "clique":
        return CliqueNetwork(home=home / "clique", nodes=nodes, period_s=max(1, round(block_time_s)))
    return Devnet(home=home / "devnet", port=None, block_time_s=block_time_s, prune_history=True, persist=False)


def run_bench(
    *, records: int = 20_000, batch_size: int = 500, clients: int = 4, block_time_s: float = 1.0,
    naive_seconds: float = 20.0, reads: int = 5_000, read_clients: int = 16, progress: Any = lambda _m: None,
    chain: Literal["anvil", "clique"] = "anvil", nodes: int = 1,
) -> BenchResult:  # fmt: skip
    home = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    node = _chain(engine=chain, nodes=nodes, home=home, block_time_s=block_time_s)
    gateway: _Gateway | None = None
    try:
        progress(f"starting the chain ({chain}, {nodes} node{'s' if nodes > 1 else ''})")
        node.up()
        settings = Settings(home=home, rpc_url=node.rpc_url, anchor_max_wait_s=1.0, chain_engine=chain)
        transactor = Transactor.from_url(node.rpc_url)
        progress("provisioning organisations and keys")
        provisioned = provision(settings=settings, transactor=transactor)
        gateway = _Gateway(settings=settings, port=free_port())

        progress(f"preparing {records:,} records")
        payloads = _payloads(records, batch_size)
        progress(f"pushing in batches of {batch_size} from {clients} clients")
        started = time.monotonic()
        _push_all(gateway.url, provisioned.api_keys[BENCH_ORG.org_id], payloads, clients=clients)
        acknowledged = time.monotonic()
        progress("waiting until every record is anchored")
        engine = make_engine(settings.index_url)
        _wait_anchored(engine, records)
        anchored = time.monotonic()
        rpc = JsonRpc(url=node.rpc_url)
        facts = _anchoring_facts(engine, rpc)
        engine.dispose()

        progress(f"naive baseline: one transaction per record for up to {naive_seconds:.0f}s")
        writer = AnchorWriter(
            rpc=rpc,
            signer=dev_account(BENCH_ORG.account),
            owner_org=BENCH_ORG.org_id,
            records_address=provisioned.deployment.address("RecordAnchors"),
            chain_id=transactor.chain_id,
        )
        naive = _naive_baseline(writer, facts.sample, seconds=naive_seconds)
        rpc.close()

        read_rate, read_latencies = float("nan"), [float("nan")]
        if reads > 0:
            progress(f"granting {BENCH_GRANTEE.org_id} and reading {reads:,} records from {read_clients} clients")
            read_rate, read_latencies = _bench_reads(
                gateway_url=gateway.url, rpc_url=node.rpc_url, deployment=provisioned.deployment,
                token=provisioned.api_keys[BENCH_GRANTEE.org_id], record_ids=[str(r[0]) for r in facts.sample],
                reads=reads, clients=read_clients,
            )  # fmt: skip

        ingest_rate = records / (anchored - started)
        naive_rate = naive.count / naive.elapsed_s if naive.elapsed_s > 0 else float("nan")
        return BenchResult(
            records=records, batch_size=batch_size, clients=clients, block_time_s=block_time_s,
            ingest_records_per_s=round(ingest_rate, 1),
            acknowledge_records_per_s=round(records / (acknowledged - started), 1),
            naive_records_per_s=round(naive_rate, 2), naive_records=naive.count,
            speedup=round(ingest_rate / naive_rate, 1) if naive_rate else float("nan"),
            anchor_latency_p50_s=round(statistics.median(facts.latencies), 3),
            anchor_latency_p95_s=round(_percentile(facts.latencies, 0.95), 3),
            gas_per_record=round(facts.gas / records, 1),
            naive_gas_per_record=round(naive.gas / naive.count, 1) if naive.count else float("nan"),
            batches=facts.batches, engine=chain, nodes=nodes,
            reads=reads, read_clients=read_clients, reads_per_s=round(read_rate, 1),
            read_latency_p50_s=round(statistics.median(read_latencies), 3),
            read_latency_p95_s=round(_percentile(read_latencies, 0.95), 3),
        )  # fmt: skip
    finally:
        if gateway is not None:
            gateway.stop()
        node.down()
        shutil.rmtree(home, ignore_errors=True)


def _payloads(records: int, batch_size: int) -> list[bytes]:
    """The push bodies: ``records`` synthetic door-access events, ``batch_size`` per request."""
    payloads = []
    for start in range(0, records, batch_size):
        batch = synthetic_events(min(batch_size, records - start), owner=BENCH_ORG.org_id, start=start)
        payloads.append(json.dumps({"records": [r.to_json_dict() for r in batch]}).encode())
    return payloads


def _push_all(gateway_url: str, token: str, payloads: list[bytes], *, clients: int) -> None:
    """Push every body from ``clients`` threads at once; raise if any push was not acknowledged (202)."""
    queue = list(reversed(payloads))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(
            base_url=gateway_url,
            timeout=120,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                answer = http.post("/v1/records", content=body)
                if answer.status_code != 202:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} pushes failed; first: {failures[0]}")


def _wait_anchored(engine: Engine, records: int) -> None:
    query = text(
        "SELECT count(*) FROM record_versions r JOIN anchor_batches b ON r.batch_id = b.id WHERE b.state = 'anchored'"
    )
    while True:
        with engine.connect() as connection:
            if connection.execute(query).scalar_one() >= records:
                return
        time.sleep(0.05)


@dataclass(frozen=True, kw_only=True)
class _AnchoringFacts:
    latencies: list[float]
    """Seconds from acknowledgement to anchor, per record."""
    gas: int
    batches: int
    sample: list[Any]
    """Up to 2,000 ``(record_id, version, blob_key, commitment)`` rows, for the naive baseline and reads."""


def _anchoring_facts(engine: Engine, rpc: JsonRpc) -> _AnchoringFacts:
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT r.received_at, b.anchored_at FROM record_versions r JOIN anchor_batches b ON r.batch_id = b.id"
        )).all()  # fmt: skip
        tx_hashes = [h for (h,) in connection.execute(text("SELECT tx_hash FROM anchor_batches")).all()]
        sample = connection.execute(text(
            "SELECT record_id, version, blob_key, commitment FROM record_versions LIMIT 2000"
        )).all()  # fmt: skip
    return _AnchoringFacts(
        latencies=[(_aware(b) - _aware(a)).total_seconds() for a, b in rows],
        gas=sum(int(str((rpc.receipt(h) or {})["gasUsed"]), 16) for h in tx_hashes),
        batches=len(tx_hashes),
        sample=list(sample),
    )


@dataclass(frozen=True, kw_only=True)
class _Naive:
    count: int
    gas: int
    elapsed_s: float


def _naive_baseline(writer: AnchorWriter, sample: list[Any], *, seconds: float) -> _Naive:
    """One ``anchorRecord`` transaction per record, each waited for, for up to ``seconds``."""
    count, gas = 0, 0
    started = time.monotonic()
    nonce = writer.nonces()[1]
    for record_id, version, blob_key, commitment in sample:
        if time.monotonic() - started > seconds:
            break
        tx = writer.sign(
            AnchorWriter.anchor_record_calldata(
                bytes.fromhex(record_id), version, bytes.fromhex(blob_key), bytes.fromhex(commitment)
            ),
            nonce=nonce,
        )
        writer.broadcast(tx)
        while (receipt := writer.receipt(tx.tx_hash)) is None:
            time.sleep(0.01)
        gas += int(str(receipt["gasUsed"]), 16)
        count += 1
        nonce += 1
    return _Naive(count=count, gas=gas, elapsed_s=time.monotonic() - started)


def _bench_reads(
    *, gateway_url: str, rpc_url: str, deployment: Any, token: str, record_ids: list[str], reads: int, clients: int
) -> tuple[float, list[float]]:
    """Grant the grantee the owner's access events on chain, then time ``reads`` logged reads over HTTP."""
    chain = LedgerChain(transactor=Transactor.from_url(rpc_url), deployment=deployment)
    now = chain.latest_timestamp()
    grant_id, _ = chain.create_grant(signer=dev_account(BENCH_ORG.account), spec=GrantSpec(
        owner_org=BENCH_ORG.org_id, grantee_org=BENCH_GRANTEE.org_id, purpose=BENCH_READ_PURPOSE,
        valid_from=now - 60, valid_until=now + 24 * 3600, record_types=(RecordType.ACCESS_EVENT.value,),
        communities=("330102001",)))  # fmt: skip
    query = urllib.parse.urlencode({"purpose": BENCH_READ_PURPOSE.label, "grant": str(grant_id)})
    target = urllib.parse.urlsplit(gateway_url)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    next_read = iter(range(reads))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        # A keep-alive connection per reader on the standard library's client: these threads share the
        # machine's two cores with the gateway, and httpx costs several times its CPU per request.
        mine: list[float] = []
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
        try:
            while True:
                with lock:
                    n = next(next_read, None)
                if n is None:
                    break
                began = time.monotonic()
                status, body = _get(connection, f"/v1/records/{record_ids[n % len(record_ids)]}?{query}", headers)
                mine.append(time.monotonic() - began)
                if status != 200:
                    failures.append(f"{status}: {body[:200]!r}")
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if failures:
        raise RuntimeError(f"{len(failures)} of {reads} reads failed; first: {failures[0]}")
    return reads / elapsed, latencies


def _get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET on a keep-alive connection; once more on a new one when the server had closed it."""
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
    except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
        connection.close()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
    return response.status, response.read()


def _aware(value: Any) -> dt.datetime:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def render(result: BenchResult) -> str:
    rows = [
        ("records pushed", f"{result.records:,} in batches of {result.batch_size}, {result.clients} clients"),
        ("chain", f"{result.engine}, {result.nodes} node{'s' if result.nodes > 1 else ''}, "
                  f"a block every {result.block_time_s:g}s"),
        ("ingest, push → all anchored", f"{result.ingest_records_per_s:,.1f} records/s"),
        ("acknowledged (202) rate", f"{result.acknowledge_records_per_s:,.1f} records/s"),
        ("naive: one tx per record", f"{result.naive_records_per_s:,.2f} records/s ({result.naive_records} records)"),
        ("speedup", f"{result.speedup:,.1f}x"),
        ("push → anchored latency", f"p50 {result.anchor_latency_p50_s:.3f}s, p95 {result.anchor_latency_p95_s:.3f}s"),
        ("gas per record", f"{result.gas_per_record:,.1f} ({result.batches} batches); naive "
                           f"{result.naive_gas_per_record:,.0f}"),
        ("logged reads (grantee, HTTP)", f"{result.reads_per_s:,.1f} reads/s ({result.reads:,} reads, "
                                         f"{result.read_clients} clients; target ≥ 500)"),
        ("read latency", f"p50 {result.read_latency_p50_s:.3f}s, p95 {result.read_latency_p95_s:.3f}s "
                         "(target p95 ≤ 1.5s)"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def result_json(result: BenchResult) -> str:
    return json.dumps(asdict(result))
