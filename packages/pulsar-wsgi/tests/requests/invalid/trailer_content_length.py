# Content-Length in a trailer (RFC 9110 6.5.1)
status = 400
