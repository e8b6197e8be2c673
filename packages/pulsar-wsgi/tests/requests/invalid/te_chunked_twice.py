# chunked applied twice (RFC 9112 7)
status = 400
