# request-line = method SP request-target SP HTTP-version (RFC 9112 3)
status = 400
