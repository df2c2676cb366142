"""Child process of the access-log crash test: appends entries for ever while the anchorer runs.

``python -m tests.ledger_api.accesslog.crash_appender CONFIG_JSON`` opens the log in ``db``, starts the
tree-head anchorer (log writer = dev account 4) in a thread, prints ``ready <size>``, then appends from
two threads (single appends and batches) and prints ``<index> <leaf hash hex>`` for every entry once
its append returned, flushed at once. The parent SIGKILLs it at random moments and restarts it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from pathlib import Path

from ledger_api.accesslog import AccessLog, TreeHeadAnchorer, TreeHeadSettings, TreeHeadWriter
from ledger_api.chain.devnet import dev_account
from ledger_api.chain.rpc import JsonRpc
from ledger_api.index.database import make_engine, sqlite_url
from ledger_api.provision import LOG_WRITER_ACCOUNT
from ledger_api.storage.local import LocalBlobStore
from tests.ledger_api.accesslog.support import make_entry


def main() -> None:
    config = json.loads(sys.argv[1])
    engine = make_engine(sqlite_url(Path(config["db"])))
    log = AccessLog(engine)
    rpc = JsonRpc(url=config["rpc_url"])
    writer = TreeHeadWriter(
        rpc=rpc, signer=dev_account(LOG_WRITER_ACCOUNT), address=config["contract"], chain_id=rpc.chain_id()
    )
    gateway_id, gateway_index, gateway_public = config["gateway_key"]
    anchorer = TreeHeadAnchorer(
        log=log,
        blobs=LocalBlobStore(root=Path(config["blobs"])),
        writer=writer,
        gateway_key=(gateway_id, gateway_index, bytes.fromhex(gateway_public)),
        auditors={org: (index, bytes.fromhex(key)) for org, (index, key) in config["auditors"].items()},
        settings=TreeHeadSettings(max_wait_s=0.05, batch_max=200, poll_s=0.01, backoff_max_s=0.2),
    )
    stop = threading.Event()
    threading.Thread(target=anchorer.run, args=(stop,), daemon=True, name="anchorer").start()
    out = sys.stdout
    lock = threading.Lock()
    out.write(f"ready {log.size}\n")
    out.flush()
    life = f"{os.getpid()}"

    def append(worker: int, batches: bool) -> None:
        rng = random.Random(f"{life}:{worker}")
        n = 0
        while True:
            count = rng.randrange(1, 25) if batches else 1
            entries = [make_entry(n + i, tag=f"{life}-{worker}", rng=rng) for i in range(count)]
            n += count
            appended = log.append_many(entries) if batches else [log.append(entries[0])]
            with lock:
                out.write("".join(f"{a.index} {a.leaf_hash.hex()}\n" for a in appended))
                out.flush()
            time.sleep(rng.uniform(0.0, 0.004))

    threads = [threading.Thread(target=append, args=(w, w % 2 == 1), daemon=True) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
