# asterisk-form only with OPTIONS (RFC 9112 3.2.4)
status = 400
