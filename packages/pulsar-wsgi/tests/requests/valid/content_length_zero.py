# an empty body announced by Content-Length: 0
requests = [
    {
        "method": "POST",
        "target": b"/e",
        "version": "1.1",
        "headers": [(b"Host", b"example.com"), (b"Content-Length", b"0")],
        "body": b"",
        "content_length": 0,
    }
]
