"""``nxsci tiled``: the configured run catalog served over HTTP (loopback by default)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from ._catalog_lock import CatalogLock, lock_catalog
from ._settings import TiledSettings
from ._tiled import CatalogError, _quiet_tiled_imports, build_tiled_app

__all__ = ["TiledServer", "serve_tiled"]


class TiledServer:
    """The configured catalog behind uvicorn on a background thread; :meth:`start` returns once the app
    answers ``/healthz`` (uvicorn listens before the app's startup has finished)."""

    def __init__(self, settings: TiledSettings | None = None, *, api_key: str | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings or TiledSettings()
        self.api_key = api_key if api_key is not None else self.settings.api_key()
        if not self.api_key:
            raise CatalogError("the tiled server needs an API key: set NXSCI_TILED_API_KEY")
        self.host, self.port = host, int(port)
        self.uri: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._lock: CatalogLock | None = None

    def start(self, timeout: float = 120.0) -> str:
        """Take the catalog (one process at a time on its local files), then serve it."""
        _quiet_tiled_imports()
        self._lock = lock_catalog(self.settings, holder="nxsci tiled")
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> str:
        import httpx
        import uvicorn

        app = build_tiled_app(self.settings, api_key=self.api_key)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                loop="asyncio")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the caller owns signals
        self._server = server
        self._thread = threading.Thread(target=server.run, name="nxsci-tiled", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise CatalogError(f"the tiled server did not start on {self.host}:{self.port} (port in use?)")
            if time.monotonic() > deadline:
                self.stop()
                raise CatalogError(f"the tiled server did not start within {timeout:.0f} s")
            time.sleep(0.05)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.port = int(port)
        uri = f"http://{host}:{port}"
        with httpx.Client(trust_env=False) as client:
            while True:
                try:
                    if client.get(f"{uri}/healthz", timeout=1.0).status_code == 200:
                        break
                except httpx.RequestError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise CatalogError(f"the tiled server at {uri} did not become ready within {timeout:.0f} s")
                time.sleep(0.05)
        self.uri = uri
        if self._lock is not None:
            self._lock.describe("nxsci tiled", uri)  # a second process is told where to write instead
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._server = self._thread = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> TiledServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_tiled(settings: TiledSettings | None = None, *, host: str = "127.0.0.1", port: int = 0,
                ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; ``ready(uri)`` once the catalog answers."""
    server = TiledServer(settings, host=host, port=port)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uri = server.start()
        if ready is not None:
            ready(uri)
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
