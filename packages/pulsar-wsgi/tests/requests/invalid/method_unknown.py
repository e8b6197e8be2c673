# a well-formed method we do not implement (RFC 9110 9.1)
status = 501
