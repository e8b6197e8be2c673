"""In-process cost of one keep-alive request through the WSGI adapter (no socket, no wrk).

How it works
------------
64 connections on a fake transport (writes dropped) each get one GET of the seed's hello world
per loop iteration, answered inline; the best of ``--runs`` runs of ``--requests`` requests is
printed in microseconds of thread CPU time per request. An A/B guide for changes to the hot
path in one process, not a benchmark (that is ``hatch run bench http``). Run it as
``python -P tools/bench/wsgi_inproc.py``: without ``-P``, ``tools/bench/http.py`` would shadow
the standard library's ``http``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from pulsar.apps import wsgi

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\n\r\n"


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    data = b"Hello World!\n"
    start_response("200 OK", (("Content-Type", "text/plain"), ("Content-Length", str(len(data)))))
    return [data]


class _Transport:
    def __init__(self) -> None:
        self.closing = False

    def write(self, data: bytes) -> None:
        pass

    def writelines(self, data: Any) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


async def _run(requests: int, connections: int, access_log: bool) -> float:
    factory = wsgi.create_protocol_factory(hello, thread_workers=0, access_log=access_log)
    protocols = []
    for _ in range(connections):
        protocol = factory()
        protocol.connection_made(_Transport())  # type: ignore[arg-type]
        protocols.append(protocol)
    rounds = requests // connections
    start = time.thread_time()
    for _ in range(rounds):
        for protocol in protocols:
            protocol.data_received(REQUEST)
        await asyncio.sleep(0)
    elapsed = time.thread_time() - start
    factory.state.close()
    return elapsed / (rounds * connections) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=19200)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args()
    best = min(
        asyncio.run(_run(args.requests, args.connections, args.access_log))
        for _ in range(args.runs)
    )
    print(f"{best:.2f} us per keep-alive request (best of {args.runs})")


if __name__ == "__main__":
    main()
