"""``python -m ledger_api.audit.bench``: how fast a bundle verifies, and how big it is.

Builds a synthetic but fully valid bundle (``--records`` record versions in batches of ``--batch``, each
leaf with type, community and a subject blind index; ``--entries`` access entries, granted reads under
one grant, anchored by tree heads every ``--head-every`` entries), writes it, then times reading and
verifying it with no network. Prints records/s and entries/s verified (the time of one whole
verification split by phase: records over the records phase, entries over the log-and-reads phase,
each with its share of reading the bundle) and the bundle size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger_api.accesslog.entry import Entry
from ledger_api.audit.bundle import read_bundle, write_bundle
from ledger_api.audit.evidence import (
    AnchorReceipt,
    BlobObservation,
    ChainFacts,
    Evidence,
    HeadReceipt,
    OrganisationHistory,
    StorageFacts,
)
from ledger_api.audit.model import GrantFact
from ledger_api.audit.verifier import verify
from ledger_api.merkle import MerkleTree, leaf_hash
from ledger_api.records.leaves import BatchManifest, LeafMetadata, RecordLeaf

__all__ = ["BenchResult", "run_bench", "synthetic_evidence"]

OWNER = "PM-LVCHENG-01"
READER = "CM-CUIYUAN-01"
_T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, block 1's timestamp
_BLOCK_S = 2


def _hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def synthetic_evidence(*, records: int, entries: int, batch: int = 2_000, head_every: int = 1_000) -> Evidence:
    """A valid chain + storage of the given sizes (everything anchored, every read covered)."""
    organisations = (
        OrganisationHistory(org_id="PS-XIHU-01", kind="police", registered_block=2, suspensions=((2, False),)),
        OrganisationHistory(org_id=OWNER, kind="property", registered_block=2, suspensions=((2, False),)),
        OrganisationHistory(org_id=READER, kind="committee", registered_block=2, suspensions=((2, False),)),
        OrganisationHistory(org_id="AU-XIHU-01", kind="auditor", registered_block=2, suspensions=((2, False),)),
    )
    grant = GrantFact(
        grant_id=1, owner_org=OWNER, grantee_org=READER, purpose="property_management",
        record_types=("access_event",), communities=("330102001",), record_id=None,
        valid_from=_T0, valid_until=_T0 + 10**8, created_block=3,
    )  # fmt: skip
    anchored = _synthetic_records(records, batch=batch, first_block=11)
    block = anchored.last_block
    log = _synthetic_log(anchored.record_ids, entries=entries, head_every=head_every, checked_block=block)
    block = log.last_block
    times = {b: _T0 + b * _BLOCK_S for b in range(1, block + 1)}
    chain = ChainFacts(
        chain_id=31337, checkpoint_block=block, checkpoint_hash="0x" + _hex(f"block {block}"), deployment_block=1,
        addresses={"RecordAnchors": "0x" + "11" * 20, "AccessLogAnchors": "0x" + "22" * 20},
        organisations=organisations, grants=(grant,), receipts=tuple(anchored.receipts), heads=tuple(log.heads),
        block_times=times,
    )  # fmt: skip
    storage = StorageFacts(manifests=anchored.manifests, blobs=tuple(anchored.blobs), entries=tuple(log.leaf_data))
    return Evidence(chain=chain, storage=storage, source="synthetic")


@dataclass(frozen=True, kw_only=True)
class _SyntheticRecords:
    manifests: dict[str, bytes]
    receipts: list[AnchorReceipt]
    blobs: list[BlobObservation]
    record_ids: list[str]
    last_block: int


def _synthetic_records(records: int, *, batch: int, first_block: int) -> _SyntheticRecords:
    """``records`` record versions of {OWNER}, anchored ``batch`` per block from ``first_block`` on."""
    block = first_block - 1
    manifests: dict[str, bytes] = {}
    receipts: list[AnchorReceipt] = []
    blobs: list[BlobObservation] = []
    record_ids: list[str] = []
    for start in range(0, records, batch):
        leaves, metadata = [], []
        for i in range(start, min(start + batch, records)):
            record_id = _hex(f"record {i}")
            ciphertext = _hex(f"blob {i}")
            record_ids.append(record_id)
            leaves.append(
                RecordLeaf(
                    record_id=record_id, version=1, owner_org=OWNER, ciphertext_hash=ciphertext,
                    commitment=_hex(f"commitment {i}"),
                )
            )  # fmt: skip
            metadata.append(
                LeafMetadata(
                    record_type="access_event", community_code="330102001", subjects=(_hex(f"subject {i % 997}"),)
                )
            )
            blobs.append(
                BlobObservation(
                    key=ciphertext, sha256=ciphertext, kind="record", record_id=record_id, version=1, owner_org=OWNER
                )
            )
        manifest = BatchManifest(owner_org=OWNER, leaves=tuple(leaves), metadata=tuple(metadata))
        data = manifest.to_bytes()
        key = hashlib.sha256(data).hexdigest()
        manifests[key] = data
        block += 1
        receipts.append(
            AnchorReceipt(
                sequence=len(receipts) + 1, owner_org=OWNER, root=manifest.root().hex(), size=len(leaves),
                manifest_hash=key, block_number=block, transaction="0x" + _hex(f"tx {key}"), log_index=0,
            )
        )  # fmt: skip
    return _SyntheticRecords(
        manifests=manifests, receipts=receipts, blobs=blobs, record_ids=record_ids, last_block=block
    )


@dataclass(frozen=True, kw_only=True)
class _SyntheticLog:
    leaf_data: list[bytes]
    heads: list[HeadReceipt]
    last_block: int


def _synthetic_log(record_ids: list[str], *, entries: int, head_every: int, checked_block: int) -> _SyntheticLog:
    """``entries`` covered reads of those records, a tree head anchored every ``head_every`` entries (and last)."""
    block = checked_block
    leaf_data: list[bytes] = []
    heads: list[HeadReceipt] = []
    tree = MerkleTree()
    moment = datetime.fromtimestamp(_T0, UTC) + timedelta(hours=1)
    for i in range(entries):
        entry = Entry.create(
            accessor_org=READER, record_id=record_ids[i % len(record_ids)], version=1, owner_org=OWNER, grant_id=1,
            purpose="property_management", emergency=False, checked_block=block, time=moment + timedelta(seconds=i),
            request_id=f"r-{i}",
        )  # fmt: skip
        data = entry.leaf_data()
        leaf_data.append(data)
        tree.append(leaf_hash(data))
        if tree.size % head_every == 0 or i == entries - 1:
            block += 1
            heads.append(
                HeadReceipt(
                    index=len(heads), size=tree.size, root=tree.root().hex(), block_number=block,
                    timestamp=_T0 + block * _BLOCK_S,
                )
            )  # fmt: skip
    return _SyntheticLog(leaf_data=leaf_data, heads=heads, last_block=block)


@dataclass(frozen=True, kw_only=True)
class BenchResult:
    records: int
    entries: int
    tree_heads: int
    bundle_bytes: int
    read_s: float
    """Reading the bundle: gunzip, digests, parsing every section."""
    records_s: float
    """Checking receipts, manifests, inclusion proofs and blob observations."""
    entries_s: float
    """Rebuilding the log, checking heads and consistency proofs, and every read's coverage."""
    discrepancies: int

    @property
    def total_s(self) -> float:
        return self.read_s + self.records_s + self.entries_s

    @property
    def records_per_s(self) -> float:
        """Records over the records phase plus their share of the bundle read (by count)."""
        share = self.read_s * self.records / max(self.records + self.entries, 1)
        return self.records / (self.records_s + share)

    @property
    def entries_per_s(self) -> float:
        share = self.read_s * self.entries / max(self.records + self.entries, 1)
        return self.entries / (self.entries_s + share)

    def to_json(self) -> dict[str, object]:
        return {
            "records": self.records,
            "entries": self.entries,
            "tree_heads": self.tree_heads,
            "bundle_bytes": self.bundle_bytes,
            "bundle_bytes_per_100k_records": round(self.bundle_bytes * 100_000 / max(self.records, 1)),
            "read_s": round(self.read_s, 3),
            "records_s": round(self.records_s, 3),
            "entries_s": round(self.entries_s, 3),
            "total_s": round(self.total_s, 3),
            "records_per_s": round(self.records_per_s),
            "entries_per_s": round(self.entries_per_s),
            "items_per_s_overall": round((self.records + self.entries) / self.total_s),
            "discrepancies": self.discrepancies,
        }


def run_bench(*, records: int, entries: int, batch: int = 2_000, head_every: int = 1_000) -> BenchResult:
    evidence = synthetic_evidence(records=records, entries=entries, batch=batch, head_every=head_every)
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as directory:
        path = Path(directory) / "bundle.ledger-audit.gz"
        size = write_bundle(evidence, path)
        started = time.perf_counter()
        loaded, found = read_bundle(path)
        read_s = time.perf_counter() - started
        timings: dict[str, float] = {}
        result = verify(loaded, found=found, timings=timings)
    return BenchResult(
        records=len(result.records),
        entries=len(result.reads),
        tree_heads=len(result.tree_heads),
        bundle_bytes=size,
        read_s=read_s,
        records_s=timings["records"],
        entries_s=timings["entries"],
        discrepancies=len(result.discrepancies),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger_api.audit.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--head-every", type=int, default=1_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_bench(records=args.records, entries=args.entries, batch=args.batch, head_every=args.head_every)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        figures = result.to_json()
        print(
            f"bundle of {result.records:,} records, {result.entries:,} access entries, "
            f"{result.tree_heads:,} tree heads: {result.bundle_bytes / 1e6:.1f} MB "
            f"({figures['bundle_bytes_per_100k_records']:,} bytes per 100,000 records)"
        )
        print(
            f"verified offline in {result.total_s:.2f} s (read {result.read_s:.2f} s, "
            f"records {result.records_s:.2f} s, "
            f"log and reads {result.entries_s:.2f} s): {result.records_per_s:,.0f} records/s, "
            f"{result.entries_per_s:,.0f} entries/s, {figures['items_per_s_overall']:,} items/s overall; "
            f"{result.discrepancies} discrepancies"
        )
    return 0 if result.discrepancies == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
