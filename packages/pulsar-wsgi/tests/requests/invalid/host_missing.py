# an HTTP/1.1 request without Host (RFC 9112 3.2)
status = 400
reason = "Host"
