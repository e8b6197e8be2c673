requests = [
    {
        "method": "GET",
        "target": b"/",
        "version": "1.1",
        "headers": [(b"Host", b"example.com")],
        "body": b"",
    }
]
