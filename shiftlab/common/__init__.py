"""The bottom layer: what the proxy, the controller and the application share
(config loading and its one error type, the loopback/token rules, the time
scale, names). It imports nothing of the planes or the application."""
