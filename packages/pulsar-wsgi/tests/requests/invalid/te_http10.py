# Transfer-Encoding in an HTTP/1.0 request: faulty framing, 400 and close (RFC 9112 6.1)
status = 400
reason = "HTTP/1.0"
