status = 400  # request smuggling, the other order
