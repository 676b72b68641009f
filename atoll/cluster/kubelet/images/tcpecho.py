"""``atoll/tcp-echo``: a TCP server sending back every byte it receives (L4 load-balancing demos).

Listens on ``$POD_IP:$PORT`` (default 9000); with ``$ECHO_PREFIX`` set, each connection
is first greeted with ``<prefix> <pod name>\\n`` so a client can tell the backends apart.
"""

from __future__ import annotations

import asyncio
import os
import signal


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    prefix = os.environ.get("ECHO_PREFIX")
    try:
        if prefix:
            writer.write(f"{prefix} {os.environ.get('POD_NAME', '')}\n".encode())
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve() -> None:
    host = os.environ.get("POD_IP") or "0.0.0.0"
    port = int(os.environ.get("PORT") or 9000)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    print(f"atoll/tcp-echo listening on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
