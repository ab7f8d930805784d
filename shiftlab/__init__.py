"""shiftlab: rehearse Amazon ECS deployments on one machine.

This package is the front door: the `shiftlab` command and reading the
config file. The planes live in `proxy` (the load balancer) and `controller`
(the ECS deployment controller).
"""

__version__ = "0.1.0"
