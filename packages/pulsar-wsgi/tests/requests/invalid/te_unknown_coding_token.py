# an unknown coding name, chunked last
status = 501
