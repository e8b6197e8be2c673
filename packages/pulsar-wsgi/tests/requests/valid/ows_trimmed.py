# leading and trailing SP/HTAB are not part of a field value (RFC 9110 5.5); an empty value is valid
requests = [
    {
        "method": "GET",
        "target": b"/",
        "version": "1.1",
        "headers": [
            (b"Host", b"example.com"),
            (b"X-Padded", b"some value"),
            (b"X-Empty", b""),
            (b"X-Tab", b"v"),
        ],
        "body": b"",
    }
]
