"""shiftlab's data plane: a reverse proxy that behaves like an AWS Application
Load Balancer.

Like an ALB it knows listeners, prioritised rules, weighted target groups,
targets and their health, and nothing about deployments. Requests are matched
against rules (proxy.matching), split by weight or a stickiness cookie
(proxy.balancer), forwarded over pooled keep-alive connections
(proxy.upstream) with ALB's headers and error codes (proxy.server), and
counted under ALB's CloudWatch metric names (proxy.stats). The admin API
(proxy.admin) plays the ELBv2 API: the controller moves traffic only through
it and reads metrics only from its stats endpoint.
"""
