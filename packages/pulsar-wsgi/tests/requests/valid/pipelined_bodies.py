# pipelined requests with bodies: each body ends where its framing says
requests = [
    {
        "method": "POST",
        "target": b"/1",
        "version": "1.1",
        "headers": [(b"Host", b"x"), (b"Content-Length", b"4")],
        "body": b"GET ",
        "content_length": 4,
    },
    {
        "method": "POST",
        "target": b"/2",
        "version": "1.1",
        "headers": [(b"Host", b"x"), (b"Transfer-Encoding", b"chunked")],
        "body": b"GET ",
        "chunked": True,
    },
    {"method": "GET", "target": b"/3", "version": "1.1", "headers": [(b"Host", b"x")], "body": b""},
]
