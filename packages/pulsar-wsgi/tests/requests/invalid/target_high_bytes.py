# raw bytes >= 0x80 in the target (RFC 9112 3.2, RFC 3986)
status = 400
