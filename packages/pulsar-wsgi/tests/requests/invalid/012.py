status = 501  # unknown method
