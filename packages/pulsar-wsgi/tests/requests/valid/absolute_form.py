# absolute-form: the target's host replaces the Host field (RFC 9112 3.2.2); obs-text in a value
requests = [
    {
        "method": "GET",
        "target": b"http://target.example:8080/absolute/path?q=1",
        "version": "1.1",
        "headers": [(b"Host", b"other.example"), (b"X-Obs-Text", b"caf\xe9")],
        "body": b"",
        "path": "/absolute/path",
        "query": "q=1",
        "environ": {"HTTP_HOST": "target.example:8080", "HTTP_X_OBS_TEXT": "café"},
    }
]
