# no chunked at all: the body length cannot be determined (RFC 9112 6.3)
status = 400
