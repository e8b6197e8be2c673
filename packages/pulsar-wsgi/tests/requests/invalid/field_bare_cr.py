# a bare CR in a field value (RFC 9112 2.2)
status = 400
