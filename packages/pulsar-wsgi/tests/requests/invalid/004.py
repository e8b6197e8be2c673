status = 400  # request smuggling: Content-Length and Transfer-Encoding
