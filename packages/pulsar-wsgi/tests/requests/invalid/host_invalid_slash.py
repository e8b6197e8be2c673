# a Host value with a path
status = 400
reason = "Host"
