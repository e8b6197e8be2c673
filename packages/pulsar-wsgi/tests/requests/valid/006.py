# absolute-form target; obs-text (a latin-1 byte) in a header value is accepted
requests = [
    {
        "method": "GET",
        "target": b"http://example.com/absolute/path?q=1",
        "version": "1.1",
        "headers": [(b"Host", b"example.com"), (b"X-Obs-Text", b"caf\xe9")],
        "body": b"",
    }
]
