"""The server sends WebSocket pings (the real one pings about every 20 s)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return head[0] & 0x0F, await reader.readexactly(length)


async def test_server_pings(make_emulator: Any) -> None:
    emu = await make_emulator(ping_interval=0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101")
        opcodes = []
        while 0x9 not in opcodes:  # a ping; our raw client never answers it
            opcode, _ = await asyncio.wait_for(_read_frame(reader), 5)
            opcodes.append(opcode)
        assert opcodes[0] == 0x1  # session.created, a text frame, came first
    finally:
        writer.close()
        await writer.wait_closed()
