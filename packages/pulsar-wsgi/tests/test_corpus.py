"""The raw request corpus (``requests/``) over real sockets, in both execution modes.

Each ``valid/*.http`` file is sent to a server on 127.0.0.1 (whole, then in three pieces split
inside the head and inside the body, with pauses between them); an application echoes what the
environ says (method, ``PATH_INFO``, ``QUERY_STRING``, the header keys) and the body it reads, and
every request of the file must come back as its ``.py`` expects. A last request on the same
connection checks that the connection still serves. Each ``invalid/*.http`` file must be answered
with its status and ``Connection: close``, and the server must then serve a fresh client.

The ``.py`` next to a file may give ``settings`` (the limits of that case, applied to the server).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from test_connection import INVALID, VALID, load
from wsgi_helpers import ServerThread, connect, parse_responses, read_all

Environ = dict[str, Any]
NEXT = b"GET /__next HTTP/1.1\r\nHost: next\r\nConnection: close\r\n\r\n"
PAUSE = 0.02


def echo_environ(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    keys = {k: v for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_"))}
    payload = json.dumps(
        {
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "protocol": environ["SERVER_PROTOCOL"],
            "keys": keys,
            "body": body.decode("latin-1"),
        }
    ).encode()
    start_response("200 OK", (("Content-Type", "application/json"),))
    return [payload]


class Servers:
    """One server per (mode, settings), started on first use, stopped at the end."""

    def __init__(self) -> None:
        self._servers: dict[tuple[int, tuple[tuple[str, Any], ...]], ServerThread] = {}

    def get(self, thread_workers: int, settings: dict[str, Any]) -> ServerThread:
        key = (thread_workers, tuple(sorted(settings.items())))
        server = self._servers.get(key)
        if server is None:
            settings = {"max_body_size": 4096, **settings}
            server = ServerThread(echo_environ, thread_workers=thread_workers, **settings)
            server.__enter__()
            self._servers[key] = server
        return server

    def close(self) -> None:
        for server in self._servers.values():
            server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    servers = Servers()
    try:
        yield servers
    finally:
        servers.close()


def expected_keys(want: dict[str, Any]) -> dict[str, str | None]:
    """The environ keys the headers of a corpus request must produce (PEP 3333 / CGI names)."""
    keys: dict[str, str | None] = {}
    for name, value in want["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        if "_" in name.decode("latin-1"):
            continue
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        text = value.decode("latin-1")
        if key in keys:
            keys[key] = f"{keys[key]}{'; ' if key == 'HTTP_COOKIE' else ','}{text}"
        else:
            keys[key] = text
    if want.get("chunked"):
        keys.pop("CONTENT_LENGTH", None)
    keys.update(want.get("environ", {}))
    return keys


def pieces_of(data: bytes) -> list[bytes]:
    """Three pieces: split inside the head and inside what follows it (a chunk-size line or
    data), or in thirds when there is no body."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0 or head_end + 4 >= len(data):
        cuts = [len(data) // 3, 2 * len(data) // 3]
    else:
        cuts = [head_end // 2, head_end + 4 + (len(data) - head_end - 4) // 2]
    cuts = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def send(port: int, pieces: list[bytes]) -> bytes:
    with connect(port) as sock:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(PAUSE)
            sock.sendall(piece)
        return read_all(sock)


@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_over_a_socket(
    path: Path, split: bool, thread_workers: int, servers: Servers
) -> None:
    data, expected = load(path)
    server = servers.get(thread_workers, expected.get("settings", {}))
    wants = expected["requests"]
    keep_alive = wants[-1].get("keep_alive", True)
    payload = data + NEXT if keep_alive else data
    out = send(server.port, pieces_of(payload) if split else [payload])
    responses = parse_responses(out)
    assert len(responses) == len(wants) + keep_alive, out
    for response, want in zip(responses, wants, strict=False):
        assert response.status == 200, response
        got = json.loads(response.body)
        assert got["method"] == want["method"]
        target = want["target"]
        path_info = want.get("path", unquote_to_bytes(target.partition(b"?")[0]).decode("latin-1"))
        assert got["path"] == path_info
        query = want.get("query", target.partition(b"?")[2].decode("latin-1"))
        assert got["query"] == query
        assert got["protocol"] == "HTTP/" + want["version"]
        assert got["body"] == want["body"].decode("latin-1")
        for key, value in expected_keys(want).items():
            assert got["keys"].get(key) == value, (key, got["keys"])
        for key in got["keys"]:  # nothing surfaced that the request did not send
            assert key in expected_keys(want), key
    if keep_alive:  # the connection served the next request
        assert json.loads(responses[-1].body)["path"] == "/__next"
    else:
        assert responses[-1].header("connection") == "close" or want["version"] == "1.0"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_over_a_socket(path: Path, thread_workers: int, servers: Servers) -> None:
    data, expected = load(path)
    server = servers.get(thread_workers, expected.get("settings", {}))
    out = send(server.port, [data])
    responses = parse_responses(out)
    assert responses, out
    assert responses[-1].status == expected["status"], out[:300]
    assert responses[-1].header("connection") == "close"
    # the server goes on serving a fresh client (a small request: the case's limits apply)
    fresh = parse_responses(send(server.port, [b"GET /ok?x=1 HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT]))
    assert [r.status for r in fresh] == [200, 200]
    assert json.loads(fresh[0].body)["path"] == "/ok"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /every HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;a=b\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n",
        b"POST /every HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    ],
    ids=["chunked", "length"],
)
def test_split_at_every_byte(request_bytes: bytes, thread_workers: int, servers: Servers) -> None:
    """One request split in two at every byte (inside the request line, a field, the end of
    the head, a chunk-size line, chunk data, the trailer), the halves sent with a pause."""
    server = servers.get(thread_workers, {})
    data = request_bytes + NEXT
    for cut in range(1, len(request_bytes) + 1):
        with connect(server.port) as sock:
            sock.sendall(data[:cut])
            time.sleep(0.002)
            sock.sendall(data[cut:])
            responses = parse_responses(read_all(sock))
        assert [r.status for r in responses] == [200, 200], cut
        got = json.loads(responses[0].body)
        assert (got["path"], got["body"]) == ("/every", "hello world"), cut
