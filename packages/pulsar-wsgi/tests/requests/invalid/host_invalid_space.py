# a Host value with a space
status = 400
reason = "Host"
