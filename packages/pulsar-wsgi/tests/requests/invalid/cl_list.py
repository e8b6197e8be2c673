# a list of lengths
strip_final_newline = True
status = 400
