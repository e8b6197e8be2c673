# asterisk-form with OPTIONS (RFC 9112 3.2.4); empty lines before the request line (RFC 9112 2.2)
requests = [
    {
        "method": "OPTIONS",
        "target": b"*",
        "version": "1.1",
        "headers": [(b"Host", b"x")],
        "body": b"",
    }
]
