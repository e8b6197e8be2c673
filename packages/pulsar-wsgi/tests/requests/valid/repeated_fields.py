# a field repeated is one comma-separated list (RFC 9110 5.3); Cookie lines join with '; '
requests = [
    {
        "method": "GET",
        "target": b"/",
        "version": "1.1",
        "headers": [
            (b"Host", b"example.com"),
            (b"Accept", b"text/html"),
            (b"Accept", b"application/json"),
            (b"Cookie", b"a=1"),
            (b"Cookie", b"b=2"),
        ],
        "body": b"",
        "environ": {"HTTP_ACCEPT": "text/html,application/json", "HTTP_COOKIE": "a=1; b=2"},
    }
]
