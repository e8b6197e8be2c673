# empty lines before a request line are tolerated (RFC 9112 2.2)
requests = [
    {
        "method": "OPTIONS",
        "target": b"*",
        "version": "1.1",
        "headers": [(b"Host", b"x")],
        "body": b"",
    }
]
