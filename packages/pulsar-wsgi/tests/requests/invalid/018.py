status = 400  # Transfer-Encoding repeated: chunked applied twice
