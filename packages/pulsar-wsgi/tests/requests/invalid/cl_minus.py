# '-5'
strip_final_newline = True
status = 400
