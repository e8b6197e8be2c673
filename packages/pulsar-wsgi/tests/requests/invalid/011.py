status = 501  # a transfer coding we do not implement
