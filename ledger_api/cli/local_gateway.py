"""The gateway served in this process, on a loopback port, for as long as a command needs it.

``ledger demo`` uses it: the same app and services as ``ledger serve``, run by uvicorn in a thread, so
stopping the command stops the gateway (no child process to leave behind).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Self

import httpx
import uvicorn

from ledger_api.errors import LedgerError
from ledger_api.gateway.app import create_app
from ledger_api.gateway.services import GatewayServices
from ledger_api.settings import Settings


class GatewayStartError(LedgerError):
    """The in-process gateway did not come up (port taken, chain unreachable, …)."""


class LocalGateway:
    def __init__(self, *, settings: Settings, port: int, host: str = "127.0.0.1") -> None:
        self._settings = settings
        self._host = host
        self._port = port
        self._services: GatewayServices | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Serve the gateway; return once ``/v1/ready`` answers 200."""
        self._services = GatewayServices.from_settings(self._settings)
        config = uvicorn.Config(
            create_app(self._services),
            host=self._host,
            port=self._port,
            log_level="warning",
            access_log=False,
            # An open event stream must not hold the shutdown up for long.
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        self._server = server
        # uvicorn installs no signal handlers off the main thread: Ctrl-C reaches the command, which stops us.
        self._thread = threading.Thread(target=server.run, name="gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if not self._thread.is_alive():
                    self.stop()
                    raise GatewayStartError(f"the gateway could not serve on {self.url} (is the port taken?)")
                try:
                    if server.started and client.get(f"{self.url}/v1/ready").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise GatewayStartError(f"the gateway on {self.url} was not ready within {timeout_s:.0f}s")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving (the app's shutdown stops the anchoring worker) and release the services."""
        server, thread, services = self._server, self._thread, self._services
        self._server = self._thread = self._services = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=30)
        if services is not None:
            services.close()
