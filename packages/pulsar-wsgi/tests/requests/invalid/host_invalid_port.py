# a non-numeric port
status = 400
reason = "Host"
