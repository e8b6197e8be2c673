# transfer-coding names are case-insensitive (RFC 9112 7)
requests = [
    {
        "method": "POST",
        "target": b"/c",
        "version": "1.1",
        "headers": [(b"Host", b"example.com"), (b"Transfer-Encoding", b"Chunked")],
        "body": b"abc",
        "chunked": True,
    }
]
