"""An asyncio client for the echo server: N messages over C connections, each echo checked.

    python examples/echo/client.py 127.0.0.1:8060 --messages 1000 --connections 10

Exits with 0 when every message came back unchanged; prints a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def one_connection(address: str, messages: int, tag: int) -> int:
    """Send ``messages`` messages one at a time on a new connection; returns how many came back
    unchanged."""
    if address.startswith("unix:"):
        reader, writer = await asyncio.open_unix_connection(address[5:])
    else:
        reader, writer = await asyncio.open_connection(*_split(address))
    ok = 0
    try:
        for i in range(messages):
            payload = f"message {tag}.{i}\n".encode()
            writer.write(payload)
            if await reader.readexactly(len(payload)) == payload:
                ok += 1
    finally:
        writer.close()
        await writer.wait_closed()
    return ok


async def run(address: str, messages: int, connections: int) -> tuple[int, int, float]:
    """Spread ``messages`` over ``connections``; returns (sent, echoed, seconds)."""
    per = [
        messages // connections + (1 if i < messages % connections else 0)
        for i in range(connections)
    ]
    start = time.perf_counter()
    results = await asyncio.gather(*(one_connection(address, n, i) for i, n in enumerate(per)))
    return messages, sum(results), time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="HOST:PORT, [IPV6]:PORT or unix:PATH")
    parser.add_argument("-n", "--messages", type=int, default=100)
    parser.add_argument("-c", "--connections", type=int, default=4)
    args = parser.parse_args(argv)
    sent, echoed, seconds = asyncio.run(run(args.address, args.messages, max(1, args.connections)))
    print(f"{echoed}/{sent} messages echoed over {args.connections} connections in {seconds:.3f}s")
    return 0 if echoed == sent else 1


if __name__ == "__main__":
    sys.exit(main())
