# a chunked body (RFC 9112 7.1); upper-case hex and leading zeros in sizes
requests = [
    {
        "method": "POST",
        "target": b"/chunked",
        "version": "1.1",
        "headers": [(b"Host", b"example.com"), (b"Transfer-Encoding", b"chunked")],
        "body": b"hello, the world",
        "chunked": True,
    }
]
