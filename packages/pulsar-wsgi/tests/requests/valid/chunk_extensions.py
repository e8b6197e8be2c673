# chunk extensions with parameters and quoted strings are accepted and ignored (RFC 9112 7.1.1)
requests = [
    {
        "method": "POST",
        "target": b"/ext",
        "version": "1.1",
        "headers": [(b"Host", b"example.com"), (b"Transfer-Encoding", b"chunked")],
        "body": b"hello world",
        "chunked": True,
    }
]
