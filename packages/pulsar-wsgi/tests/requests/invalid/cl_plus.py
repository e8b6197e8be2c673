# Content-Length = 1*DIGIT (RFC 9110 8.6): '+5'
strip_final_newline = True
status = 400
