"""The local devnet: anvil from the npm package ``@foundry-rs/anvil-linux-amd64``, state kept on disk.

anvil is started detached with ``--state`` (load at start, dump at exit) plus a periodic dump, so a
``down``/``up`` cycle, and even a crash, keeps the chain. Chain id and dev accounts are fixed: the
accounts come from anvil's well-known test mnemonic, which is only ever acceptable on this devnet.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger_api.chain.errors import ChainError, ChainUnavailable

NODE_DIR = Path(__file__).resolve().parents[2] / "hardhat-free-devnet"
ANVIL_BIN = NODE_DIR / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"

DEVNET_CHAIN_ID = 31337
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """Dev account ``index`` of the fixed devnet mnemonic (BIP-44 path m/44'/60'/0'/0/index)."""
    account: LocalAccount = Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account


def dev_private_keys() -> frozenset[str]:
    """The devnet's well-known keys, which settings refuse to use on any other chain."""
    return frozenset(dev_account(i).key.hex().removeprefix("0x") for i in range(DEV_ACCOUNT_COUNT))


@dataclass(frozen=True, kw_only=True)
class DevnetStatus:
    running: bool
    pid: int | None
    rpc_url: str
    chain_id: int | None = None
    block_number: int | None = None


class Devnet:
    """Start, stop and inspect one anvil instance whose files live in ``home``."""

    def __init__(
        self,
        *,
        home: Path,
        host: str = "127.0.0.1",
        port: int | None = 8545,
        chain_id: int = DEVNET_CHAIN_ID,
        block_time_s: float | None = None,
        prune_history: bool = False,
        persist: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self._home = home
        self._host = host
        # None: pick a free port when starting, and pick again if another process takes it first.
        self._auto_port = port is None
        self._port = port if port is not None else free_port()
        self._chain_id = chain_id
        self._block_time_s = block_time_s
        self._prune_history = prune_history
        self._persist = persist
        self._extra_args = extra_args

    @property
    def rpc_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def state_path(self) -> Path:
        return self._home / "anvil-state.json"

    @property
    def _pid_path(self) -> Path:
        return self._home / "anvil.pid"

    @property
    def log_path(self) -> Path:
        return self._home / "anvil.log"

    def command(self) -> list[str]:
        cmd = [
            str(ANVIL_BIN),
            "--host", self._host,
            "--port", str(self._port),
            "--chain-id", str(self._chain_id),
            "--mnemonic", DEVNET_MNEMONIC,
            "--accounts", str(DEV_ACCOUNT_COUNT),
            "--balance", "1000000",
        ]  # fmt: skip
        if self._persist:
            # --state loads at start and dumps at exit; the interval dump bounds what a crash loses.
            cmd += ["--state", str(self.state_path), "--state-interval", "2"]
        if self._block_time_s:
            cmd += ["--block-time", str(self._block_time_s)]
        if self._prune_history:
            # Keep the newest states: with none kept, a call anvil resolved to "latest" just before another
            # transaction was mined fails with BlockOutOfRangeError (seen under parallel load).
            cmd += ["--prune-history", str(PRUNED_STATES_KEPT)]
        return cmd + list(self._extra_args)

    def up(self, *, timeout_s: float = 30.0) -> DevnetStatus:
        """Start anvil unless it already runs; return once it answers JSON-RPC."""
        current = self.status()
        if current.running:
            return current
        attempts = 5 if self._auto_port else 1
        for attempt in range(attempts):
            try:
                return self._start(timeout_s=timeout_s)
            except ChainError:
                # A free port can be taken between choosing it and binding it (parallel test workers).
                if attempt + 1 == attempts or self.status().running:
                    raise
                self._port = free_port()
        raise AssertionError("unreachable")

    def _start(self, *, timeout_s: float) -> DevnetStatus:
        if not ANVIL_BIN.is_file():
            raise ChainError(f"anvil is not installed at {ANVIL_BIN}: run `make bootstrap`")
        if _port_in_use(self._host, self._port):
            raise ChainUnavailable(f"port {self._port} is taken by another process; pick another with --port")
        self._home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pid_path.write_text(str(process.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ChainError(f"anvil exited with status {process.returncode}; see {self.log_path}")
            status = self.status()
            if status.running and status.chain_id is not None:
                return status
            time.sleep(0.1)
        self.down()
        raise ChainUnavailable(f"anvil did not answer on {self.rpc_url} within {timeout_s:.0f}s; see {self.log_path}")

    def down(self, *, timeout_s: float = 20.0) -> bool:
        """Stop anvil (it dumps its state on the way out). True when something was stopped."""
        pid = self._read_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self._pid_path.unlink(missing_ok=True)
            return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._pid_path.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """Stop anvil abruptly (SIGKILL), as a crash would: for tests of recovery."""
        pid = self._read_pid()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
        self._pid_path.unlink(missing_ok=True)

    def status(self) -> DevnetStatus:
        pid = self._read_pid()
        running = pid is not None and alive(pid)
        if not running:
            return DevnetStatus(running=False, pid=None, rpc_url=self.rpc_url)
        chain_id = _rpc(self.rpc_url, "eth_chainId")
        block = _rpc(self.rpc_url, "eth_blockNumber")
        return DevnetStatus(
            running=True,
            pid=pid,
            rpc_url=self.rpc_url,
            chain_id=int(chain_id, 16) if chain_id else None,
            block_number=int(block, 16) if block else None,
        )

    def _read_pid(self) -> int | None:
        try:
            return int(self._pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default (IANA's dynamic range starts at 49152)


#: In-memory states a pruned devnet keeps (bounded memory for long runs and benchmarks).
PRUNED_STATES_KEPT = 64


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, below the kernel's ephemeral range.

    Why below it: a server stopped and restarted on its port (a devnet restart keeps its URL) must find
    the port still free, and the kernel hands ports of the ephemeral range to outgoing connections of any
    process in between. Random choice keeps parallel test workers apart; a start-up that still loses
    the race retries with another port.
    """
    high = _ephemeral_low()
    low = max(1024, high - 12_000)
    for _ in range(200):
        port = secrets.randbelow(high - low) + low
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports as :func:`free_port` chooses them."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def rpc_call(url: str, method: str, params: list[Any] | None = None, *, timeout_s: float = 5.0) -> Any:
    """One JSON-RPC call to a local node: its result, or :class:`ChainUnavailable` (no answer, or an error)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - loopback devnet URL
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ChainUnavailable(f"{method} to {url} failed: {exc}") from exc
    if answer.get("error"):
        raise ChainUnavailable(f"{method} to {url}: {answer['error']}")
    return answer.get("result")


def _rpc(url: str, method: str) -> str | None:
    try:
        result = rpc_call(url, method, timeout_s=2)
    except ChainUnavailable:
        return None
    return str(result) if result is not None else None
