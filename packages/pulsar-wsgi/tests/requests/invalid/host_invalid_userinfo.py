# userinfo is not part of Host (RFC 9110 7.2)
status = 400
reason = "Host"
