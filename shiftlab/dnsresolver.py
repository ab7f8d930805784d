"""A stub resolver that asks one DNS server (the `route53` section's, say)
and keeps each answer until its TTL ends, as a client's resolver cache does:
what makes a weighted-DNS shift reach clients late, which an ALB weight
change never does. `shiftlab load --dns HOST:PORT` resolves through it.

One resolver is one client's cache: every connection it opens meanwhile
goes to the address it holds. A name that the server says does not exist
(NXDOMAIN) or has no address fails the request, as getaddrinfo would.
"""

from __future__ import annotations

import contextvars
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from aiohttp.abc import AbstractResolver, ResolveResult

# The address the last resolution in this task gave: a request's own (aiohttp
# resolves in the task that sends the request), read by the load generator.
RESOLVED: contextvars.ContextVar[str | None] = contextvars.ContextVar("shiftlab_resolved", default=None)


class DnsLookupError(OSError):
    """The server did not give an address for the name."""


@dataclass
class Answer:
    address: str
    ttl: int
    expires_at: float  # on the resolver's clock


def parse_server(text: str) -> tuple[str, int]:
    """`127.0.0.1:5353` (or `[::1]:5353`, or an address alone: port 53)."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    if not host or not 0 < port < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT of a DNS server")
    return host, port


async def query_a(server: tuple[str, int], name: str, timeout: float = 2.0) -> tuple[str, int]:
    """One A query over UDP (TCP when the answer is truncated): the address and its TTL."""
    q = dns.message.make_query(name, dns.rdatatype.A)
    try:
        resp = await dns.asyncquery.udp(q, server[0], port=server[1], timeout=timeout)
        if resp.flags & dns.flags.TC:
            resp = await dns.asyncquery.tcp(q, server[0], port=server[1], timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:
        raise DnsLookupError(f"DNS server {server[0]}:{server[1]}: {exc or type(exc).__name__}") from None
    if resp.rcode() != dns.rcode.NOERROR:
        raise DnsLookupError(f"{name}: {dns.rcode.to_text(resp.rcode())} from {server[0]}:{server[1]}")
    for rrset in resp.answer:
        if rrset.rdtype == dns.rdatatype.A:
            return rrset[0].address, rrset.ttl
    raise DnsLookupError(f"{name}: no A record from {server[0]}:{server[1]}")


class TtlResolver(AbstractResolver):
    """aiohttp's resolver for one client: one answer a name, kept for its TTL.
    `clock`: seconds (monotonic), injectable for tests."""

    def __init__(self, server: tuple[str, int], clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server
        self.clock = clock
        self.cache: dict[str, Answer] = {}
        self.queries = 0  # answers fetched from the server (cache misses)

    async def lookup(self, host: str) -> Answer:
        now = self.clock()
        cached = self.cache.get(host)
        if cached is not None and now < cached.expires_at:
            return cached
        address, ttl = await query_a(self.server, host)
        self.queries += 1
        answer = Answer(address, ttl, now + ttl)
        self.cache[host] = answer
        return answer

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answer = await self.lookup(host)
        RESOLVED.set(answer.address)
        return [ResolveResult(hostname=host, host=answer.address, port=port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None
