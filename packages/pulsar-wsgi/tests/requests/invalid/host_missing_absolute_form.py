# absolute-form does not excuse a missing Host in HTTP/1.1
status = 400
reason = "Host"
