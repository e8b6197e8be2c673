# a trailer section is read; its fields are not merged into the headers (RFC 9112 7.1.2)
requests = [
    {
        "method": "POST",
        "target": b"/t",
        "version": "1.1",
        "headers": [
            (b"Host", b"example.com"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Trailer", b"X-Checksum"),
        ],
        "body": b"abc",
        "chunked": True,
    }
]
