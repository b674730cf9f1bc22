"""A loopback TCP proxy that can be cut into a blackhole: it keeps accepting connections and
reading what arrives, and forwards nothing either way (a database that stopped answering, the
worst case for a client: no error, no reset, only silence).

Used by ``make bench`` (vector latency with PostgreSQL blackholed) and by the integration test
of the same situation. Runs in the caller's event loop; loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib


class BlackholeProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.cut = False
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    async def start(self) -> BlackholeProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, template: str) -> str:
        """``template`` with ``{port}`` replaced, e.g. ``postgresql://u@127.0.0.1:{port}/db``."""
        return template.format(port=self.port)

    def blackhole(self) -> None:
        """From now on nothing is forwarded, on open connections and new ones."""
        self.cut = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        if self.cut:
            await self._swallow(reader)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer)),
            asyncio.ensure_future(self._pump(up_reader, writer)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if self.cut:
                continue  # read and dropped: the peer waits forever
            writer.write(data)
            await writer.drain()

    @staticmethod
    async def _swallow(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
