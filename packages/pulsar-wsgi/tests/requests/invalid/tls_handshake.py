# a TLS ClientHello sent to a plain HTTP port
strip_final_newline = True
status = 400
