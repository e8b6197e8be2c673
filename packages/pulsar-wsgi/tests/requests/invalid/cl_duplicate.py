# Content-Length twice, different values (RFC 9112 6.3)
strip_final_newline = True
status = 400
