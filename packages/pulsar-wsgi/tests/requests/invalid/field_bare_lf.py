# a bare LF ends a field line (RFC 9112 2.2: rejected)
status = 400
