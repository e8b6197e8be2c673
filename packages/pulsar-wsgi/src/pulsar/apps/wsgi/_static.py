"""Static files and gzip: two small WSGI helpers.

:class:`StaticFiles` serves a directory (``GET``/``HEAD``; ``Last-Modified`` and
``If-Modified-Since`` → 304, single ``Range`` → 206 or 416, bodies through ``wsgi.file_wrapper``
so the server can use ``sendfile``; paths cannot escape the directory).
:class:`GZipMiddleware` compresses responses of clients that accept gzip.
"""

from __future__ import annotations

import gzip
import mimetypes
import os
import re
from collections.abc import Callable, Iterable
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from ._environ import FileWrapper

__all__ = ["GZipMiddleware", "StaticFiles"]

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def _respond(
    start_response: Callable[..., Any], status: str, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    body = f"{status}\n".encode()
    start_response(
        status,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


class StaticFiles:
    """A WSGI application serving the files under ``directory``.

    Args:
        directory: the root directory.
        index: served for a directory path (None: 404).
        fallback: a WSGI application for paths that are not files (default: 404).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        index: str | None = "index.html",
        fallback: Callable[..., Any] | None = None,
    ) -> None:
        self.directory = os.path.realpath(directory)
        self.index = index
        self.fallback = fallback

    def resolve(self, path_info: str) -> str | None:
        """The file served for ``path_info``, or None (missing, or outside the directory)."""
        try:
            relative = path_info.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None
        full = os.path.realpath(os.path.join(self.directory, relative.lstrip("/")))
        if full != self.directory and not full.startswith(self.directory + os.sep):
            return None
        if os.path.isdir(full) and self.index:
            full = os.path.join(full, self.index)
        return full if os.path.isfile(full) else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = self.resolve(environ.get("PATH_INFO") or "/")
        if path is None:
            if self.fallback is not None:
                return self.fallback(environ, start_response)
            return _respond(start_response, "404 Not Found")
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "HEAD"):
            return _respond(start_response, "405 Method Not Allowed", [("Allow", "GET, HEAD")])
        stat = os.stat(path)
        mtime = int(stat.st_mtime)
        headers = [
            ("Content-Type", mimetypes.guess_type(path)[0] or "application/octet-stream"),
            ("Last-Modified", formatdate(mtime, usegmt=True)),
            ("Accept-Ranges", "bytes"),
        ]
        since = environ.get("HTTP_IF_MODIFIED_SINCE")
        if since:
            try:
                if mtime <= parsedate_to_datetime(since).timestamp():
                    start_response("304 Not Modified", headers)
                    return []
            except (TypeError, ValueError):
                pass
        size = stat.st_size
        start, end = 0, size - 1
        status = "200 OK"
        range_header = environ.get("HTTP_RANGE")
        if range_header and size:
            match = _RANGE_RE.fullmatch(range_header.strip())
            if match and (match.group(1) or match.group(2)):
                first, last = match.group(1), match.group(2)
                if first:
                    start = int(first)
                    end = min(int(last), size - 1) if last else size - 1
                else:  # suffix: the last N bytes
                    start = max(0, size - int(last))
                if start > end or start >= size:
                    return _respond(
                        start_response,
                        "416 Range Not Satisfiable",
                        [("Content-Range", f"bytes */{size}")],
                    )
                status = "206 Partial Content"
                headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        length = max(0, end - start + 1)
        headers.append(("Content-Length", str(length)))
        start_response(status, headers)
        if method == "HEAD":
            return []
        handle = open(path, "rb")  # noqa: SIM115 - closed by the server through the wrapper
        handle.seek(start)
        wrapper = environ.get("wsgi.file_wrapper", FileWrapper)
        return wrapper(handle, 64 * 1024)


class GZipMiddleware:
    """Compress the responses of ``app`` with gzip when the client accepts it.

    Responses that are small (below ``minimum_size``), already encoded, partial, without a body
    or of a type not in ``types`` (``None``: any) pass through. The body is buffered to be
    compressed (keep this for text responses, not for streams).
    """

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        minimum_size: int = 500,
        level: int = 6,
        types: Iterable[str] | None = (
            "text/",
            "application/json",
            "application/javascript",
            "application/xml",
            "image/svg+xml",
        ),
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.level = level
        self.types = tuple(types) if types is not None else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        accept = environ.get("HTTP_ACCEPT_ENCODING", "")
        if "gzip" not in accept.lower():
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info and captured.get("sent"):
                raise exc_info[1].with_traceback(exc_info[2])
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: captured.setdefault("written", []).append(data)

        result = self.app(environ, capture)
        try:
            chunks = [*captured.get("written", []), *result]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        body = b"".join(chunks)
        status: str = captured["status"]
        headers: list[tuple[str, str]] = captured["headers"]
        names = {name.lower(): value for name, value in headers}
        ctype = names.get("content-type", "")
        if (
            len(body) < self.minimum_size
            or not status.startswith("200")
            or "content-encoding" in names
            or (self.types is not None and not ctype.startswith(self.types))
        ):
            captured["sent"] = True
            start_response(status, headers)
            return [body]
        compressed = gzip.compress(body, self.level)
        headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "etag")]
        vary = names.get("vary")
        headers = [(n, v) for n, v in headers if n.lower() != "vary"]
        headers += [
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(compressed))),
            ("Vary", f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"),
        ]
        captured["sent"] = True
        start_response(status, headers)
        return [compressed]
