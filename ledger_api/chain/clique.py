"""A multi-node proof-of-authority devnet: go-ethereum 1.13 nodes sealing Clique blocks on loopback.

Why geth 1.13: 1.14 removed Clique sealing (and every pre-merge network); 1.13.15 is the last release
that seals, built into ``.tools/bin`` by ``scripts/install_geth.sh``. A consortium runs Besu QBFT or
GoQuorum; this network is the closest real thing the tests can start: several signers, blocks that
carry 97+ bytes of ``extraData`` (the signers and a seal), out-of-turn blocks that reorganise the tip,
nodes that die and come back.

Layout (``home``): ``network.json`` (chain id, ports, node keys, signer keys; chosen once, so every
``up`` after a ``down`` finds the same network), ``genesis.json``, and per node ``node<i>/`` with the
geth data directory, its log and pid. Every node is a signer; each holds the dev accounts' balances
in genesis, so the devnet's well-known accounts pay for transactions as on anvil.

Start-up order matters: every node is started without sealing, peered to every other one
(``admin_addPeer``, which geth keeps redialling, so a node killed and restarted is found again), and
only once each has all its peers does each start sealing (``miner_start``); a signer that seals alone
at the start forks off a chain of its own. (``static-nodes.json`` is ignored by geth 1.13.)
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_keys.datatypes import PrivateKey

from ledger_api.chain.devnet import DEV_ACCOUNT_COUNT, DEVNET_CHAIN_ID, alive, dev_account, free_ports, rpc_call
from ledger_api.chain.errors import ChainError, ChainUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
GETH_BIN = REPO_ROOT / ".tools" / "bin" / "geth"
GETH_VERSION = "1.13.15"

#: Seconds between blocks. Clique seals an empty block every period, like a consortium chain.
DEFAULT_PERIOD_S = 1
_PASSWORD = "clique-devnet"  # noqa: S105 - the keystores of throw-away devnet signer keys
_APIS = "eth,net,web3,admin,miner,clique,txpool"


@dataclass(frozen=True, kw_only=True)
class CliqueNodeStatus:
    index: int
    running: bool
    pid: int | None
    rpc_url: str
    signer: str
    block_number: int | None = None
    peers: int | None = None


@dataclass(frozen=True, kw_only=True)
class CliqueNetworkStatus:
    running: bool
    """Every node runs."""
    chain_id: int
    rpc_urls: tuple[str, ...]
    nodes: tuple[CliqueNodeStatus, ...]

    @property
    def rpc_url(self) -> str:
        """Every node's URL, comma-separated: what ``LEDGER_RPC_URL`` takes for fail-over."""
        return ",".join(self.rpc_urls)


class CliqueNetwork:
    """Create, start, stop, kill and inspect a Clique network of ``nodes`` signers whose files live in ``home``."""

    def __init__(
        self,
        *,
        home: Path,
        nodes: int = 4,
        host: str = "127.0.0.1",
        chain_id: int = DEVNET_CHAIN_ID,
        period_s: int = DEFAULT_PERIOD_S,
        geth: Path = GETH_BIN,
    ) -> None:
        if nodes < 1:
            raise ChainError(f"a Clique network needs at least one node, not {nodes}")
        self._home = home
        self._host = host
        self._geth = geth
        self._layout = self._load_or_create(nodes=nodes, chain_id=chain_id, period_s=period_s)

    @classmethod
    def existing(cls, home: Path, *, geth: Path = GETH_BIN) -> CliqueNetwork | None:
        """The network created in ``home`` before, or None when there is none."""
        path = home / "network.json"
        if not path.is_file():
            return None
        layout = json.loads(path.read_text())
        return cls(home=home, nodes=len(layout["nodes"]), chain_id=int(layout["chain_id"]), geth=geth)

    # --- layout (chosen once) ----------------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self._home

    @property
    def size(self) -> int:
        return len(self._layout["nodes"])

    @property
    def chain_id(self) -> int:
        return int(self._layout["chain_id"])

    @property
    def rpc_urls(self) -> tuple[str, ...]:
        return tuple(self.node_url(i) for i in range(self.size))

    @property
    def rpc_url(self) -> str:
        """Every node's URL, comma-separated: what ``LEDGER_RPC_URL`` takes for fail-over."""
        return ",".join(self.rpc_urls)

    def node_url(self, index: int) -> str:
        return f"http://{self._host}:{self._layout['nodes'][index]['http_port']}"

    def signer(self, index: int) -> str:
        return str(self._layout["nodes"][index]["signer"])

    def _load_or_create(self, *, nodes: int, chain_id: int, period_s: int) -> dict[str, Any]:
        path = self._home / "network.json"
        if path.is_file():
            layout: dict[str, Any] = json.loads(path.read_text())
            if len(layout["nodes"]) != nodes:
                raise ChainError(
                    f"the Clique network in {self._home} has {len(layout['nodes'])} nodes, not {nodes}: "
                    "remove that directory for a new network"
                )
            return layout
        ports = free_ports(3 * nodes)
        layout = {
            "chain_id": chain_id,
            "period_s": period_s,
            "nodes": [
                {
                    "http_port": ports[3 * i],
                    "p2p_port": ports[3 * i + 1],
                    "auth_port": ports[3 * i + 2],
                    "node_key": secrets.token_hex(32),
                    "signer_key": secrets.token_hex(32),
                }
                for i in range(nodes)
            ],
        }
        for node in layout["nodes"]:
            node["signer"] = Account.from_key(node["signer_key"]).address
            node["enode_id"] = PrivateKey(bytes.fromhex(node["node_key"])).public_key.to_hex()[2:]
        self._home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(layout, indent=1))
        path.chmod(0o600)
        return layout

    def genesis(self) -> dict[str, Any]:
        """Clique genesis: every fork up to London at block 0, the signers in ``extraData``, dev accounts funded."""
        signers = sorted(n["signer"].lower().removeprefix("0x") for n in self._layout["nodes"])
        forks = ["homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople", "petersburg"]
        forks += ["istanbul", "muirGlacier", "berlin", "london"]
        config: dict[str, Any] = {"chainId": self.chain_id, **{f"{f}Block": 0 for f in forks}}
        config["clique"] = {"period": int(self._layout["period_s"]), "epoch": 30000}
        balance = hex(10**6 * 10**18)
        alloc = {dev_account(i).address.lower()[2:]: {"balance": balance} for i in range(DEV_ACCOUNT_COUNT)}
        return {
            "config": config,
            "difficulty": "0x1",
            "gasLimit": hex(30_000_000),
            "extradata": "0x" + "00" * 32 + "".join(signers) + "00" * 65,
            "alloc": alloc,
        }

    def _node_dir(self, index: int) -> Path:
        return self._home / f"node{index}"

    def _enode(self, index: int) -> str:
        node = self._layout["nodes"][index]
        return f"enode://{node['enode_id']}@{self._host}:{node['p2p_port']}"

    def _initialise(self, index: int) -> None:
        """``geth init`` and the signer's keystore, once per node."""
        node_dir = self._node_dir(index)
        if (node_dir / "geth" / "geth" / "chaindata").is_dir():
            return
        node_dir.mkdir(parents=True, exist_ok=True)
        genesis = self._home / "genesis.json"
        genesis.write_text(json.dumps(self.genesis(), indent=1))
        (node_dir / "password").write_text(_PASSWORD)
        key_file = node_dir / "signer.key"
        key_file.write_text(self._layout["nodes"][index]["signer_key"])
        key_file.chmod(0o600)
        datadir = str(node_dir / "geth")
        self._run_geth(["--datadir", datadir, "init", str(genesis)], node_dir)
        self._run_geth(
            ["--datadir", datadir, "account", "import", "--password", str(node_dir / "password"), str(key_file)],
            node_dir,
        )
        key_file.unlink()

    def _run_geth(self, args: list[str], node_dir: Path) -> None:
        done = subprocess.run(
            [str(self._geth), *args], capture_output=True, text=True, check=False, cwd=node_dir, timeout=120
        )
        if done.returncode != 0:
            raise ChainError(f"geth {args[2]} failed for {node_dir}: {done.stderr.strip()[-500:]}")

    def command(self, index: int) -> list[str]:
        node = self._layout["nodes"][index]
        node_dir = self._node_dir(index)
        return [
            str(self._geth),
            "--datadir", str(node_dir / "geth"),
            "--networkid", str(self.chain_id),
            "--syncmode", "full",
            # Every state kept on disk: a SIGKILLed node restarts where it was instead of re-executing.
            "--gcmode", "archive",
            "--nodekeyhex", node["node_key"],
            "--port", str(node["p2p_port"]),
            # geth dials at most a third of --maxpeers itself: with a small value, two nodes that each dialled
            # two others never connect to each other (both wait for the other to dial).
            "--nodiscover", "--maxpeers", str(max(50, 3 * self.size)),
            "--http", "--http.addr", self._host, "--http.port", str(node["http_port"]),
            "--http.api", _APIS, "--http.vhosts", "*",
            "--authrpc.addr", self._host, "--authrpc.port", str(node["auth_port"]),
            "--ipcdisable", "--nat", "none",
            "--miner.etherbase", node["signer"],
            "--unlock", node["signer"], "--password", str(node_dir / "password"), "--allow-insecure-unlock",
            "--miner.gasprice", "1", "--txpool.pricelimit", "1",
            "--rpc.allow-unprotected-txs",
            "--verbosity", "3",
        ]  # fmt: skip

    # --- running -----------------------------------------------------------------------------------

    def up(self, *, timeout_s: float = 60.0) -> CliqueNetworkStatus:
        """Start every node that is not running, peer them all, then let every signer seal."""
        self._require_geth()
        started = [i for i in range(self.size) if not self._running(i)]
        for index in started:
            self._initialise(index)
            self._spawn(index)
        for index in started:
            self._await_rpc(index, timeout_s=timeout_s)
        self._peer_all(timeout_s=timeout_s)
        for index in range(self.size):
            self._seal(index)
        self._await_caught_up(timeout_s=timeout_s)
        return self.status()

    def start_node(self, index: int, *, timeout_s: float = 60.0) -> None:
        """Restart one node (after :meth:`stop_node` or :meth:`kill_node`): peer it, then let it seal."""
        if not self._running(index):
            self.up(timeout_s=timeout_s)

    def down(self, *, timeout_s: float = 20.0) -> bool:
        """Stop every node (SIGTERM: geth writes its state on the way out). True when something was stopped."""
        stopped = [self.stop_node(i, timeout_s=timeout_s) for i in range(self.size)]
        return any(stopped)

    def stop_node(self, index: int, *, timeout_s: float = 20.0) -> bool:
        pid = self._pid(index)
        if pid is None or not alive(pid):
            self._pid_path(index).unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._pid_path(index).unlink(missing_ok=True)
        return True

    def kill_node(self, index: int) -> None:
        """SIGKILL one node, as a crash or a power cut would."""
        pid = self._pid(index)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
        self._pid_path(index).unlink(missing_ok=True)

    def isolate_node(self, index: int, *, timeout_s: float = 30.0) -> None:
        """Cut node ``index`` off from every other node (a network partition): it keeps running and sealing
        what Clique lets a lone signer seal, while the others go on without it. :meth:`rejoin_node` heals."""
        others = [i for i in range(self.size) if i != index and self._running(i)]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # Again until it holds: a dial already under way when a peer is removed can still connect.
            for other in others:
                self.call(other, "admin_removePeer", [self._enode(index)])
                self.call(index, "admin_removePeer", [self._enode(other)])
            time.sleep(0.2)
            if int(self.call(index, "net_peerCount"), 16) == 0:
                return
        raise ChainUnavailable(f"node {index} kept its peers for {timeout_s:.0f}s")

    def rejoin_node(self, index: int, *, timeout_s: float = 60.0) -> None:
        """Peer node ``index`` with every other node again; return once the nodes are within a block of each
        other."""
        self._peer_all(timeout_s=timeout_s)
        self._await_caught_up(timeout_s=timeout_s)

    def sealer(self, index: int, number: int) -> str:
        """The signer that sealed block ``number``, as node ``index`` has it (``clique_getSigner``)."""
        return str(self.call(index, "clique_getSigner", [hex(number)]))

    def status(self) -> CliqueNetworkStatus:
        nodes = tuple(self._node_status(i) for i in range(self.size))
        return CliqueNetworkStatus(
            running=all(n.running for n in nodes), chain_id=self.chain_id, rpc_urls=self.rpc_urls, nodes=nodes
        )

    def call(self, index: int, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call to node ``index``; :class:`ChainUnavailable` when it does not answer."""
        return rpc_call(self.node_url(index), method, list(params))

    def _node_status(self, index: int) -> CliqueNodeStatus:
        pid = self._pid(index)
        running = pid is not None and alive(pid)
        block = peers = None
        if running:
            try:
                block = int(self.call(index, "eth_blockNumber"), 16)
                peers = int(self.call(index, "net_peerCount"), 16)
            except ChainUnavailable:
                pass
        return CliqueNodeStatus(
            index=index,
            running=running,
            pid=pid if running else None,
            rpc_url=self.node_url(index),
            signer=self.signer(index),
            block_number=block,
            peers=peers,
        )

    def _require_geth(self) -> None:
        if not self._geth.is_file():
            raise ChainError(
                f"geth is not installed at {self._geth}: run `scripts/install_geth.sh` (or `make bootstrap`)"
            )

    def _spawn(self, index: int) -> None:
        node_dir = self._node_dir(index)
        with (node_dir / "geth.log").open("ab") as log:
            process = subprocess.Popen(
                self.command(index),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=node_dir,
            )
        self._pid_path(index).write_text(str(process.pid))

    def _await_rpc(self, index: int, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._running(index):
                raise ChainError(f"geth node {index} exited at start; see {self._node_dir(index) / 'geth.log'}")
            try:
                self.call(index, "eth_chainId")
                return
            except ChainUnavailable:
                time.sleep(0.1)
        raise ChainUnavailable(f"geth node {index} did not answer within {timeout_s:.0f}s")

    def _peer_all(self, *, timeout_s: float) -> None:
        """Every running node asks for every other one as a (redialled) static peer; wait until all are peered."""
        running = [i for i in range(self.size) if self._running(i)]
        for index in running:
            for other in running:
                if other != index:
                    self.call(index, "admin_addPeer", [self._enode(other)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(len(self.call(i, "admin_peers")) >= len(running) - 1 for i in running):
                return
            time.sleep(0.2)
        raise ChainUnavailable(f"the Clique nodes did not all peer within {timeout_s:.0f}s")

    def _await_caught_up(self, *, timeout_s: float) -> None:
        """Until every running node is within a block of the highest head: a node restarted behind the others
        answers with its old head while it syncs, and a caller of ``up`` expects one chain."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            heads = [int(self.call(i, "eth_blockNumber"), 16) for i in range(self.size) if self._running(i)]
            if not heads or max(heads) - min(heads) <= 1:
                return
            time.sleep(0.2)
        raise ChainUnavailable(f"the Clique nodes did not catch up with each other within {timeout_s:.0f}s")

    def _seal(self, index: int) -> None:
        if self._running(index) and not self.call(index, "eth_mining"):
            self.call(index, "miner_start")

    def _pid_path(self, index: int) -> Path:
        return self._node_dir(index) / "geth.pid"

    def _pid(self, index: int) -> int | None:
        try:
            return int(self._pid_path(index).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _running(self, index: int) -> bool:
        pid = self._pid(index)
        return pid is not None and alive(pid)
