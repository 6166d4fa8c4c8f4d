"""Agreement domain: how far judges agree with experts, with each other and with themselves."""
