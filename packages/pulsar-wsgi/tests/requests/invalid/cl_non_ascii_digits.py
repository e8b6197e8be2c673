# non-ASCII digits (U+0665, what Python's int() would accept)
strip_final_newline = True
status = 400
