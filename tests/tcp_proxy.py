"""A TCP proxy on loopback that a test can cut: every open connection dropped and new ones refused, until healed.

It stands between Bedel and PostgreSQL, so a test cuts the database mid-load without touching the
machine's server. Refusing is done by closing each new connection at once (the listening socket
stays), which the client sees as a connection lost during its handshake.
"""

import asyncio
from contextlib import suppress

_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.cut = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut_all(self) -> None:
        """Drop every connection now and refuse new ones until `heal`."""
        self.cut = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def heal(self) -> None:
        self.cut = False

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.cut:
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.transport.abort()
            return
        if self.cut:  # cut while connecting
            client_writer.transport.abort()
            server_writer.transport.abort()
            return
        self._open |= {client_writer, server_writer}
        await asyncio.gather(
            self._pipe(client_reader, server_writer, client_writer),
            self._pipe(server_reader, client_writer, server_writer),
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: asyncio.StreamWriter
    ) -> None:
        """Copy one direction until either side closes; then close both."""
        with suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(_CHUNK):
                writer.write(chunk)
                await writer.drain()
        for end in (writer, other):
            self._open.discard(end)
            end.transport.abort()
