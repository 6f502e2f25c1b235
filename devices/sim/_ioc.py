"""The simulated beamline as a caproto IOC on Channel Access (``nxsci sim-ioc``).

It serves the PV database of :class:`BeamlineRecords` (every PV the device classes connect to) on the
given interfaces only (loopback by default) and runs the same record logic as the in-process simulated
devices. A client put is committed at once (monitors see it), then processed by the record; the put
completes (``WriteNotify``) when processing ends, so ``EpicsMotor`` moves, ``EraseStart`` and the
shutter command complete when they are done. Stops cleanly on SIGTERM / SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._instrument import InstrumentModel
from ._pvs import PutProcessor, PVDatabase, PVSpec
from ._records import BeamlineRecords

if TYPE_CHECKING:
    from .._config import BeamlineConfig

__all__ = ["CaprotoIO", "build_pvdb", "serve"]


class CaprotoIO:
    """:class:`PVIO` over caproto channels: record threads post through the server's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, db: PVDatabase, channels: dict[str, Any]) -> None:
        self.loop, self.db, self.channels = loop, db, channels
        self._loop_thread = threading.get_ident()

    def get(self, name: str) -> Any:
        spec, channel = self.db.specs[name], self.channels[name]
        value = channel.value
        if spec.kind == "enum":
            return channel.enum_strings.index(value) if value in channel.enum_strings else 0
        if spec.kind == "array":
            return np.asarray(value, dtype=spec.dtype)
        return value

    def _wire(self, name: str, value: Any) -> Any:
        spec, channel = self.db.specs[name], self.channels[name]
        value = spec.coerce(value)
        if spec.kind == "enum":
            return channel.enum_strings[int(value)]
        if spec.kind == "array":
            return np.asarray(value).tolist()
        return value

    def post(self, name: str, value: Any) -> None:
        write = self.channels[name].write(self._wire(name, value), verify_value=False)
        if threading.get_ident() == self._loop_thread:
            self.loop.create_task(write)
        else:
            asyncio.run_coroutine_threadsafe(write, self.loop).result()


def _channel(spec: PVSpec, server: _Server) -> Any:
    """A caproto channel for ``spec`` whose client writes go through the record processing."""
    from caproto import ChannelChar, ChannelDouble, ChannelEnum, ChannelInteger, ChannelString

    if spec.kind == "float":
        base: type = ChannelDouble
        kwargs: dict[str, Any] = dict(value=float(spec.value), precision=spec.precision, units=spec.units,
                                      lower_ctrl_limit=spec.limits[0], upper_ctrl_limit=spec.limits[1])
    elif spec.kind == "int":
        base, kwargs = ChannelInteger, dict(value=int(spec.value), units=spec.units)
    elif spec.kind == "enum":
        base, kwargs = ChannelEnum, dict(value=spec.enum_strs[int(spec.value)], enum_strings=spec.enum_strs)
    elif spec.kind == "string":
        base, kwargs = ChannelString, dict(value=str(spec.value))
    elif spec.kind == "char":
        base, kwargs = ChannelChar, dict(value=str(spec.value), max_length=spec.length)
    else:  # array
        base = ChannelDouble if spec.dtype.startswith("float") else ChannelInteger
        kwargs = dict(value=np.asarray(spec.value).tolist(), max_length=spec.length)
    cls = _HOOKED.get(base)
    if cls is None:
        cls = _HOOKED[base] = type(f"Nxsci{base.__name__}", (_Processed, base), {})
    return cls(nxsci_name=spec.name, nxsci_server=server, **kwargs)


class _Processed:
    """Mixin: commit a client write, process it (echo + record handler) and return its final value."""

    def __init__(self, *, nxsci_name: str, nxsci_server: _Server, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[call-arg]
        self._nxsci_name = nxsci_name
        self._nxsci_server = nxsci_server

    async def verify_value(self, data: Any) -> Any:
        data = await super().verify_value(data)  # type: ignore[misc]
        return await self._nxsci_server.process(self, self._nxsci_name, data)


_HOOKED: dict[type, type] = {}


class _Server:
    def __init__(self, db: PVDatabase) -> None:
        self.db = db
        self.channels: dict[str, Any] = {name: _channel(spec, self) for name, spec in db.specs.items()}
        self.io: CaprotoIO | None = None
        self.processor: PutProcessor | None = None

    async def process(self, channel: Any, name: str, data: Any) -> Any:
        assert self.io is not None and self.processor is not None
        spec = self.db.specs[name]
        if spec.kind == "enum":
            value = channel.enum_strings.index(data) if data in channel.enum_strings else int(data)
        else:
            value = spec.coerce(data)
        if name not in self.db.handlers:
            if spec.echo:
                await self.channels[spec.echo].write(self.io._wire(spec.echo, value), verify_value=False)
            return data
        await channel.write(data, verify_value=False)  # committed: monitors see the new value now
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        self.processor.submit(name, value, lambda: loop.call_soon_threadsafe(_set_done, finished))
        await finished
        return channel.value  # the record's final value (unchanged unless the handler posted one)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def build_pvdb(config: BeamlineConfig) -> tuple[BeamlineRecords, _Server]:
    """The records (bound later to the running loop) and the caproto channels of a configured beamline."""
    model = InstrumentModel(config.simulation, sample_in=config.devices.sample_stage.positions["in"])
    records = BeamlineRecords(config, model)
    return records, _Server(records.database)


class _NoBeaconNoise(logging.Filter):
    """Beacons go to loopback only; with no CA repeater listening each one would log a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to send beacon")


def serve(config: BeamlineConfig, *, interfaces: tuple[str, ...] = ("127.0.0.1",),
          ready: Callable[[str], None] | None = None) -> None:
    """Run the IOC until SIGTERM or SIGINT; ``ready`` gets a one-line message once clients can connect."""
    from caproto.asyncio.server import Context

    logging.getLogger("caproto.ctx").addFilter(_NoBeaconNoise())
    records, server = build_pvdb(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        io = CaprotoIO(loop, server.db, server.channels)
        server.io = io
        server.processor = PutProcessor(server.db, io)
        records.bind(io)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        context = Context(server.channels, list(interfaces))

        async def announce(async_lib: Any) -> None:
            if ready is not None:
                ready(f"nxsci sim-ioc ready: {len(server.channels)} PVs of beamline '{config.beamline}' "
                      f"on {','.join(interfaces)}:{context.port}")

        task = asyncio.create_task(context.run(startup_hook=announce))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not stopper.done():
            stopper.cancel()

    try:
        asyncio.run(main())
    finally:
        records.close()
