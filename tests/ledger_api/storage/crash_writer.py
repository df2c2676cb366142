"""Child process of the crash test: writes blobs for ever and reports each key once its put returned.

``python crash_writer.py ROOT SEED BARRIER`` prints ``ready`` and then, after every ``put`` or
``put_many`` returns, one line per key, flushed at once. The parent SIGKILLs it at a random moment
and checks that every reported key is readable and intact.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ledger_api.storage.local import LocalBlobStore


def _blob(rng: random.Random) -> bytes:
    # Mostly small records, some large enough (up to 2 MiB) that a kill often lands inside a write.
    size = rng.choice([0, 1, 100, 1024, 4096]) if rng.random() < 0.6 else rng.randrange(16_384, 2 << 20)
    return rng.randbytes(size)


def main() -> None:
    root, seed, barrier = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rng = random.Random(seed)
    store = LocalBlobStore(root=root, barrier="syncfs" if barrier == "syncfs" else "fsync")
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    while True:
        if rng.random() < 0.3:
            keys = [store.put(_blob(rng))]
        else:
            keys = store.put_many([_blob(rng) for _ in range(rng.randrange(1, 40))])
        out.write("".join(f"{key}\n" for key in keys))
        out.flush()


if __name__ == "__main__":
    main()
