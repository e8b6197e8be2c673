# two Host lines, same value
status = 400
reason = "Host"
