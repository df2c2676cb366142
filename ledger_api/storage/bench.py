"""Blob-store throughput: ``python -m ledger_api.storage.bench [options]``.

Times ``put_many`` of random blobs (1 KiB, batches of 500 by default) on the local store with each
durability barrier, and on an S3-compatible server when ``--s3-endpoint`` is given (credentials from
``--s3-access-key``/``--s3-secret-key`` or LEDGER_S3_ACCESS_KEY/LEDGER_S3_SECRET_KEY). Variants run
interleaved, round after round, and the median is reported: disks shared with other work are noisy.
Prints rates only; nothing here asserts timings.

The local store writes under ``--root`` (default: a temporary directory, removed afterwards). Point it
at the disk the gateway will use; a tmpfs measures nothing. ``--precreate-dirs`` creates the whole
fan-out tree first, as in a store that already holds millions of blobs; without it most blobs of a
fresh store also pay for creating their directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from ledger_api.storage import ACCESS_KEY_ENV, SECRET_KEY_ENV
from ledger_api.storage.base import BlobStore
from ledger_api.storage.local import BARRIERS, LocalBlobStore
from ledger_api.storage.s3 import S3BlobStore


def _filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; "?" elsewhere)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "?"
    resolved = str(path.resolve())
    best = ("", "?")
    for fields in mounts:
        point = fields[1]
        if (resolved == point or resolved.startswith(point.rstrip("/") + "/")) and len(point) > len(best[0]):
            best = (point, fields[2])
    return best[1]


def _time_batches(store: BlobStore, blobs: int, batch: int, size: int) -> float:
    """Blobs per second for ``blobs`` fresh random blobs stored ``batch`` at a time."""
    batches = [[os.urandom(size) for _ in range(min(batch, blobs - start))] for start in range(0, blobs, batch)]
    started = time.perf_counter()
    for chunk in batches:
        store.put_many(chunk)
    return blobs / (time.perf_counter() - started)


def _time_single(store: BlobStore, blobs: int, size: int) -> float:
    data = [os.urandom(size) for _ in range(blobs)]
    started = time.perf_counter()
    for item in data:
        store.put(item)
    return blobs / (time.perf_counter() - started)


def _report(label: str, rates: Sequence[float]) -> None:
    print(
        f"{label:<34} {statistics.median(rates):>9,.0f} blobs/s"
        f"   (median of {len(rates)}; min {min(rates):,.0f}, max {max(rates):,.0f})",
        flush=True,
    )


def _precreate(root: Path, fanout: int) -> None:
    def make(directory: Path, depth: int) -> None:
        if depth == fanout:
            return
        for i in range(256):
            child = directory / f"{i:02x}"
            child.mkdir(exist_ok=True)
            make(child, depth + 1)

    make(root, 0)
    os.sync()


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.s3_endpoint and not (args.s3_access_key and args.s3_secret_key):
        parser.error(f"--s3-endpoint needs --s3-access-key/--s3-secret-key or {ACCESS_KEY_ENV}/{SECRET_KEY_ENV}")
    print(f"put_many of {args.size}-byte blobs in batches of {args.batch}, {args.blobs} blobs per round")
    variants: list[tuple[str, Callable[[], float]]] = []
    cleanup: list[Callable[[], None]] = []
    if not args.no_local:
        variants += _local_variants(args, cleanup)
    if args.s3_endpoint:
        variants += _s3_variants(args, cleanup)
    if not variants:
        parser.error("nothing to measure: drop --no-local or give --s3-endpoint")
    results: dict[str, list[float]] = {label: [] for label, _ in variants}
    try:
        for _ in range(args.rounds):
            for label, run in variants:
                results[label].append(run())
        for label, rates in results.items():
            _report(label, rates)
    finally:
        for step in cleanup:
            step()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ledger_api.storage.bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--blobs", type=int, default=5000, help="blobs per round and variant (default 5000)")
    parser.add_argument("--batch", type=int, default=500, help="blobs per put_many (default 500)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per blob (default 1024)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--root", type=Path, help="directory for the local store (default: a temporary one)")
    parser.add_argument("--fanout", type=int, default=2)
    parser.add_argument("--barrier", choices=[*BARRIERS, "both"], default="both")
    parser.add_argument(
        "--sync-workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 8],
        help="fsync threads to try for barrier=fsync, comma-separated (default 1,8)",
    )
    parser.add_argument("--precreate-dirs", action="store_true", help="create the whole fan-out tree first")
    parser.add_argument("--single", type=int, default=500, help="also time this many one-by-one puts (0: skip)")
    parser.add_argument("--no-local", action="store_true", help="skip the local store")
    parser.add_argument("--s3-endpoint", help="S3-compatible endpoint, e.g. http://127.0.0.1:8333")
    parser.add_argument("--s3-bucket", default="ledger-bench")
    parser.add_argument("--s3-access-key", default=os.environ.get(ACCESS_KEY_ENV))
    parser.add_argument("--s3-secret-key", default=os.environ.get(SECRET_KEY_ENV))
    parser.add_argument("--s3-workers", type=int, default=8, help="concurrent uploads per put_many (default 8)")
    return parser


def _local_variants(
    args: argparse.Namespace, cleanup: list[Callable[[], None]]
) -> list[tuple[str, Callable[[], float]]]:
    """The local store under each barrier (and fsync thread count), and one-by-one puts."""
    variants: list[tuple[str, Callable[[], float]]] = []
    root: Path = args.root or Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    if args.root is None:
        cleanup.append(lambda: shutil.rmtree(root, ignore_errors=True))
    root.mkdir(parents=True, exist_ok=True)
    print(f"local store: {root} ({_filesystem_type(root)}), fanout {args.fanout}")
    if args.precreate_dirs:
        _precreate(root, args.fanout)
    barriers = BARRIERS if args.barrier == "both" else (args.barrier,)
    for barrier in barriers:
        for workers in args.sync_workers if barrier == "fsync" else [1]:
            store = LocalBlobStore(root=root, fanout=args.fanout, barrier=barrier, sync_workers=workers)
            label = f"local put_many, {barrier}" + (f" x{workers} threads" if barrier == "fsync" else "")
            variants.append((label, _bound(_time_batches, store, args)))
    if args.single:
        single_store = LocalBlobStore(root=root, fanout=args.fanout)
        variants.append(("local put, one by one", lambda: _time_single(single_store, args.single, args.size)))
    return variants


def _s3_variants(args: argparse.Namespace, cleanup: list[Callable[[], None]]) -> list[tuple[str, Callable[[], float]]]:
    """The S3 store (a prefix of its own, emptied afterwards), batched and one by one."""
    variants: list[tuple[str, Callable[[], float]]] = []
    s3 = S3BlobStore(
        endpoint_url=args.s3_endpoint,
        bucket=args.s3_bucket,
        access_key=args.s3_access_key,
        secret_key=args.s3_secret_key,
        prefix=f"bench-{uuid.uuid4().hex[:8]}/",
        max_workers=args.s3_workers,
    )
    s3.ensure_bucket()
    print(f"s3 store: {args.s3_endpoint} bucket {args.s3_bucket} prefix {s3.prefix}, {args.s3_workers} workers")
    variants.append(("s3 put_many", _bound(_time_batches, s3, args)))
    if args.single:
        variants.append(("s3 put, one by one", lambda: _time_single(s3, args.single, args.size)))
    cleanup.append(lambda: _empty_prefix(s3))
    return variants


def _bound(
    function: Callable[[BlobStore, int, int, int], float], store: BlobStore, args: argparse.Namespace
) -> Callable[[], float]:
    return lambda: function(store, args.blobs, args.batch, args.size)


def _empty_prefix(store: S3BlobStore) -> None:
    for key in list(store.iter_keys()):
        store.delete(key)


if __name__ == "__main__":
    main()
