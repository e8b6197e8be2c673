# obs-fold is rejected (RFC 9112 5.2)
status = 400
