# a chunk size that is not hex (RFC 9112 7.1)
status = 400
