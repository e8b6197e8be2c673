requests = [
    {
        "method": "POST",
        "target": b"/chunked",
        "version": "1.1",
        "headers": [(b"Transfer-Encoding", b"chunked")],
        "body": b"hello world",
        "chunked": True,
    }
]
