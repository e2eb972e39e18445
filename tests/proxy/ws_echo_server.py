"""A WebSocket echo server (python3-websockets) for the tunnel tests: prints its port, then serves.

Messages are echoed as they came (text as text, binary as binary). A text message "close:CODE" makes
the server close the connection with CODE (the server closes first); "name" answers the server's name.
Usage: ws_echo_server.py NAME [PORT]
"""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close:"):
                await ws.close(int(message.split(":", 1)[1]), "server says bye")
                return
            if message == "name":
                await ws.send(sys.argv[1])
                continue
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main():
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    async with websockets.serve(echo, "127.0.0.1", port, max_size=None, ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


asyncio.run(main())
