# pipelined requests, the last one HTTP/1.0 (no keep-alive)
requests = [
    {"method": "GET", "target": b"/a", "version": "1.1", "headers": [(b"Host", b"x")], "body": b""},
    {"method": "GET", "target": b"/b", "version": "1.1", "headers": [(b"Host", b"x")], "body": b""},
    {
        "method": "GET",
        "target": b"/c",
        "version": "1.0",
        "headers": [],
        "body": b"",
        "keep_alive": False,
    },
]
