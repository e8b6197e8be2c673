# a major version we do not implement (RFC 9110 15.6.6)
status = 505
