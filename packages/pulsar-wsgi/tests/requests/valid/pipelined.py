# pipelined requests (RFC 9112 9.3.2), the last one HTTP/1.0 without keep-alive
requests = [
    {"method": "GET", "target": b"/a", "version": "1.1", "headers": [(b"Host", b"x")], "body": b""},
    {
        "method": "GET",
        "target": b"/b?q",
        "version": "1.1",
        "headers": [(b"Host", b"x")],
        "body": b"",
        "path": "/b",
        "query": "q",
    },
    {
        "method": "GET",
        "target": b"/c",
        "version": "1.0",
        "headers": [],
        "body": b"",
        "keep_alive": False,
    },
]
