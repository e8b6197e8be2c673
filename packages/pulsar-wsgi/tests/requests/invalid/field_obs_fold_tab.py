# obs-fold with HTAB
status = 400
