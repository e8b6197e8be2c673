"""Router, StaticFiles and GZipMiddleware (through the real server)."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
from wsgi_helpers import ServerThread

from pulsar.apps.wsgi import GZipMiddleware, Router, StaticFiles


def text(body: str) -> Callable[..., Any]:
    def app(
        environ: dict[str, Any], start_response: Callable[..., Any], **params: Any
    ) -> list[bytes]:
        data = body.format(**params).encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


def test_router() -> None:
    router = Router()
    router.add("/", text("home"))
    router.add("/users/<int:id>", text("user {id}"), methods=["GET"])
    router.add("/users/<int:id>", text("deleted {id}"), methods=["DELETE"])
    router.add("/files/<path:rest>", text("file {rest}"))
    router.add("/price/<float:value>", text("{value}"))

    @router.route("/items/<name>", methods=["POST", "PUT"])
    def item(environ: dict[str, Any], start_response: Callable[..., Any], name: str) -> list[bytes]:
        start_response("201 Created", [("Content-Length", str(len(name)))])
        return [name.encode()]

    with ServerThread(router, thread_workers=0) as srv, httpx.Client(base_url=srv.url) as client:
        assert client.get("/").text == "home"
        assert client.get("/users/42").text == "user 42"
        assert client.delete("/users/7").text == "deleted 7"
        assert client.head("/users/42").status_code == 200
        assert client.get("/users/abc").status_code == 404
        assert client.get("/files/a/b/c.txt").text == "file a/b/c.txt"
        assert client.get("/price/1.5").text == "1.5"
        assert client.put("/items/box").status_code == 201
        response = client.post("/users/1")
        assert response.status_code == 405
        assert response.headers["allow"] == "DELETE, GET, HEAD"
        assert client.get("/nope").status_code == 404
    with pytest.raises(ValueError):
        router.add("/<uuid:x>", text(""))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "data.txt").write_bytes(b"0123456789")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text("{}")
    old = 1_600_000_000
    os.utime(tmp_path / "data.txt", (old, old))
    return tmp_path


def test_static_files(site: Path, thread_workers: int) -> None:
    app = StaticFiles(site)
    with (
        ServerThread(app, thread_workers=thread_workers) as srv,
        httpx.Client(base_url=srv.url) as client,
    ):
        response = client.get("/data.txt")
        assert response.content == b"0123456789"
        assert response.headers["content-type"] == "text/plain"
        assert response.headers["last-modified"] == formatdate(1_600_000_000, usegmt=True)
        assert client.get("/").text == "<h1>home</h1>"
        assert client.get("/sub/a.json").headers["content-type"] == "application/json"
        assert client.get("/missing").status_code == 404
        assert client.get("/../etc/passwd").status_code == 404
        assert client.get("/%2e%2e/%2e%2e/etc/passwd").status_code == 404
        assert client.post("/data.txt").status_code == 405
        head = client.head("/data.txt")
        assert head.headers["content-length"] == "10" and head.content == b""
        # conditional
        since = formatdate(1_600_000_100, usegmt=True)
        assert client.get("/data.txt", headers={"If-Modified-Since": since}).status_code == 304
        older = formatdate(1_500_000_000, usegmt=True)
        assert client.get("/data.txt", headers={"If-Modified-Since": older}).status_code == 200
        # ranges
        part = client.get("/data.txt", headers={"Range": "bytes=2-5"})
        assert part.status_code == 206 and part.content == b"2345"
        assert part.headers["content-range"] == "bytes 2-5/10"
        assert client.get("/data.txt", headers={"Range": "bytes=7-"}).content == b"789"
        assert client.get("/data.txt", headers={"Range": "bytes=-3"}).content == b"789"
        bad = client.get("/data.txt", headers={"Range": "bytes=20-30"})
        assert bad.status_code == 416 and bad.headers["content-range"] == "bytes */10"
        assert client.get("/data.txt", headers={"Range": "lines=1-2"}).status_code == 200


def test_gzip_middleware(thread_workers: int) -> None:
    big = "hello " * 200

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = (big if environ["PATH_INFO"] == "/big" else "small").encode()
        ctype = "image/png" if environ["PATH_INFO"] == "/png" else "text/plain"
        if environ["PATH_INFO"] == "/png":
            body = big.encode()
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    with ServerThread(GZipMiddleware(app), thread_workers=thread_workers) as srv:
        with httpx.Client(base_url=srv.url) as client:
            response = client.get("/big", headers={"Accept-Encoding": "gzip"})
            assert response.headers["content-encoding"] == "gzip"
            assert response.headers["vary"] == "Accept-Encoding"
            assert response.text == big  # httpx decodes
            raw = client.get("/big", headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in raw.headers
            small = client.get("/small", headers={"Accept-Encoding": "gzip"})
            assert "content-encoding" not in small.headers
            png = client.get("/png", headers={"Accept-Encoding": "gzip"})
            assert "content-encoding" not in png.headers
        with httpx.Client(base_url=srv.url, headers={"Accept-Encoding": "gzip"}) as client:
            with client.stream("GET", "/big") as response:
                compressed = b"".join(response.iter_raw())
            assert gzip.decompress(compressed).decode() == big
