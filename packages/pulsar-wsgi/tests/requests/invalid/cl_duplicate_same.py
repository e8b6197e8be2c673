# Content-Length twice, same value (a singleton field)
strip_final_newline = True
status = 400
