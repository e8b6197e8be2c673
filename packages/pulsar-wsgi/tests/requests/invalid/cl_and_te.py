# Content-Length with Transfer-Encoding: request smuggling (RFC 9112 6.3)
status = 400
