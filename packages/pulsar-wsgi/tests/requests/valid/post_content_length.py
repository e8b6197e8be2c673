# a body framed by Content-Length (RFC 9112 6.2), with a query
strip_final_newline = True
requests = [
    {
        "method": "POST",
        "target": b"/upload?x=1&y=2",
        "version": "1.1",
        "headers": [
            (b"Host", b"example.com"),
            (b"Content-Type", b"text/plain"),
            (b"Content-Length", b"11"),
        ],
        "body": b"hello world",
        "content_length": 11,
        "path": "/upload",
        "query": "x=1&y=2",
    }
]
