# Expect: 100-continue (RFC 9110 10.1.1)
strip_final_newline = True
requests = [
    {
        "method": "PUT",
        "target": b"/item",
        "version": "1.1",
        "headers": [
            (b"Host", b"example.com"),
            (b"Expect", b"100-continue"),
            (b"Content-Length", b"3"),
        ],
        "body": b"abc",
        "expect_continue": True,
        "content_length": 3,
    }
]
