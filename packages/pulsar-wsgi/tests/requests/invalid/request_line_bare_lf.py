# a bare LF ends no line (RFC 9112 2.2: we do not accept it)
status = 400
