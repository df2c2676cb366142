"""Micro-benchmark: ``python -m ledger_api.crypto.bench [--records N] [--size BYTES] [--grantees K]``.

Seals and opens synthetic records with a fresh data key and one HPKE wrap per recipient, for each suite,
on one core (the gateway's other work shares the second). Prints rates and the blob overhead; nothing
here asserts timings.
"""

from __future__ import annotations

import argparse
import os
import time

from ledger_api.crypto.envelope import RecipientKey, SealedRecord, open_record, seal_record
from ledger_api.crypto.hpke import HpkeSuite, generate_keypair

_OWNER = "police-001"
_TYPE = "incident"


def _record_id(i: int) -> str:
    return f"{i:064x}"  # the size of a SHA-256 hex record id


def run(suite: HpkeSuite, *, records: int, size: int, grantees: int) -> None:
    owner_private, owner_public = generate_keypair(suite)
    recipients = {_OWNER: RecipientKey(org_id=_OWNER, key_index=0, public_key=owner_public)}
    for g in range(grantees):
        org = f"committee-{g:03d}"
        recipients[org] = RecipientKey(org_id=org, key_index=0, public_key=generate_keypair(suite)[1])
    plaintext = os.urandom(size)

    sealed: list[SealedRecord] = []
    start = time.perf_counter()
    for i in range(records):
        sealed.append(
            seal_record(
                plaintext=plaintext,
                record_id=_record_id(i),
                owner_org=_OWNER,
                record_type=_TYPE,
                version=1,
                recipients=recipients,
            )
        )
    seal_s = time.perf_counter() - start

    start = time.perf_counter()
    for record in sealed:
        open_record(
            record.blob,
            org_id=_OWNER,
            key_index=0,
            private_key=owner_private,
            expected_hash=record.ciphertext_hash,
            expected_commitment=record.commitment,
        )
    open_s = time.perf_counter() - start

    blob = len(sealed[0].blob)
    label = f"{suite.value}, {size} B, {1 + grantees} recipient(s)"
    print(f"{label:<40} seal {records / seal_s:>9,.0f} rec/s   open {records / open_s:>9,.0f} rec/s   ", end="")
    print(f"blob {blob:,} B (overhead {blob - size:,} B)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--size", type=int, default=1024, help="plaintext bytes per record")
    parser.add_argument("--grantees", type=int, default=0, help="recipients besides the owner")
    args = parser.parse_args(argv)
    for suite in HpkeSuite:
        run(suite, records=args.records, size=args.size, grantees=args.grantees)


if __name__ == "__main__":
    main()
