# a coding we do not implement, chunked last (RFC 9112 6.1: 501)
status = 501
