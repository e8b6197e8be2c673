# HTTP-name is case-sensitive (RFC 9112 2.3)
status = 400
