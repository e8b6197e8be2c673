# Content-Type twice (a singleton field)
strip_final_newline = True
status = 400
reason = "Content-Type"
