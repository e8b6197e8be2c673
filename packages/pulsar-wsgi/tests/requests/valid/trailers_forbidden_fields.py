# Host (and any field) in a trailer is dropped, never surfaced as a header (RFC 9110 6.5.1)
requests = [
    {
        "method": "POST",
        "target": b"/t",
        "version": "1.1",
        "headers": [(b"Host", b"example.com"), (b"Transfer-Encoding", b"chunked")],
        "body": b"abc",
        "chunked": True,
        "environ": {"HTTP_HOST": "example.com", "HTTP_X_INJECTED": None},
    }
]
