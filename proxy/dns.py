"""An authoritative DNS server for one hosted zone with weighted records: the
part of Amazon Route 53 that the reference architecture "two services, each
behind its own load balancer, traffic shifted by stepping weighted records"
needs (the `route53` section).

Route 53's weighted routing, as its developer guide and API reference say it
(https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-policy-weighted.html,
https://docs.aws.amazon.com/Route53/latest/APIReference/API_ResourceRecordSet.html):
records of one name and type, each with a SetIdentifier and a Weight 0..255;
each query is answered with one record set, chosen with probability
weight / sum of the weights; a record of weight 0 is never answered, unless
every record of the group has weight 0, when all are answered with equal
probability; one ResourceRecord per weighted record set.

As an authoritative server: AA set on answers from the zone; NXDOMAIN (with
the zone's SOA) for a name the zone does not have, NOERROR with no answer
(NODATA) for a type the name does not have; REFUSED for a name outside the
zone (Route 53's name servers answer only for the zones they host); FORMERR
for a message that does not parse but has a header; dropped below that.
UDP and TCP (RFC 7766: two-byte length prefix, several queries a connection).

The wire format is dnspython's. Weights change while the server runs
(`Zone.set_weights`, the controller's router: ChangeResourceRecordSets'
role), and each answer's TTL is the record's, divided by the time scale
(at least 1 s) so that a scaled rehearsal keeps the ratio of propagation
delay to step interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import random
import struct
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from pydantic import Field, field_validator, model_validator

from shiftlab.common.configfile import Model, in_range
from shiftlab.common.netsafety import is_loopback

# Route 53's own SOA for a new hosted zone, but for the name server's name
# (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/SOA-NSrecords.html):
# refresh 7200, retry 900, expire 1209600, minimum (negative caching) 86400, TTL 900.
SOA_TTL = 900
SOA_TIMES = (1, 7200, 900, 1209600, 86400)
TCP_IDLE_SECONDS = 10.0  # a TCP client that sends nothing for this long is closed


class ResourceRecord(Model):
    Value: str


class ResourceRecordSet(Model):
    """Route 53's ResourceRecordSet, weighted: Name, Type, TTL, SetIdentifier,
    Weight, ResourceRecords (exactly one, as the API reference says for
    weighted record sets)."""

    Name: str
    Type: Literal["A", "AAAA"] = "A"
    TTL: Annotated[int, in_range(0, 2147483647)] = 60
    SetIdentifier: Annotated[str, Field(min_length=1, max_length=128)]
    Weight: Annotated[int, in_range(0, 255)]
    ResourceRecords: Annotated[list[ResourceRecord], Field(min_length=1, max_length=1)]

    @field_validator("Name")
    @classmethod
    def _name(cls, v: str) -> str:
        return absolute(v)

    @model_validator(mode="after")
    def _value(self) -> ResourceRecordSet:
        value = self.ResourceRecords[0].Value
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"ResourceRecords[0].Value: {value!r} is not an IP address") from None
        if (addr.version == 4) != (self.Type == "A"):
            raise ValueError(f"ResourceRecords[0].Value: {value!r} is not an IPv{4 if self.Type == 'A' else 6} "
                             f"address, as a {self.Type} record needs")
        return self

    @property
    def value(self) -> str:
        return self.ResourceRecords[0].Value


class HostedZone(Model):
    Name: str

    @field_validator("Name")
    @classmethod
    def _name(cls, v: str) -> str:
        return absolute(v)


class Route53Config(Model):
    """The `route53` section's DNS part: where the server listens, the zone, its records."""

    Address: str = "127.0.0.1"
    Port: Annotated[int, in_range(0, 65535)] = 5353
    HostedZone: HostedZone
    ResourceRecordSets: Annotated[list[ResourceRecordSet], Field(min_length=1)]

    @field_validator("Address")
    @classmethod
    def _loopback(cls, v: str) -> str:
        if not is_loopback(v):
            raise ValueError(f"{v!r} is not a loopback address: shiftlab's DNS server answers this machine only")
        return v

    @model_validator(mode="after")
    def _records(self) -> Route53Config:
        zone = dns.name.from_text(self.HostedZone.Name)
        seen: dict[tuple[str, str, str], int] = {}
        for i, rs in enumerate(self.ResourceRecordSets):
            if not dns.name.from_text(rs.Name).is_subdomain(zone):
                raise ValueError(f"ResourceRecordSets[{i}].Name: {rs.Name!r} is not in the hosted zone "
                                 f"{self.HostedZone.Name!r}")
            key = (rs.Name.lower(), rs.Type, rs.SetIdentifier)
            if key in seen:
                raise ValueError(f"ResourceRecordSets[{i}].SetIdentifier: {rs.SetIdentifier!r} is also "
                                 f"ResourceRecordSets[{seen[key]}]'s for {rs.Name} {rs.Type}; Route 53 needs "
                                 "one per record of a weighted group")
            seen[key] = i
        return self

    def groups(self) -> dict[tuple[str, str], list[ResourceRecordSet]]:
        """The weighted groups: (lower-case absolute name, type) -> record sets."""
        out: dict[tuple[str, str], list[ResourceRecordSet]] = {}
        for rs in self.ResourceRecordSets:
            out.setdefault((rs.Name.lower(), rs.Type), []).append(rs)
        return out


def absolute(name: str) -> str:
    """A domain name with its final dot, as Route 53 writes them."""
    if not name or name.strip(".") == "" or " " in name:
        raise ValueError(f"{name!r} is not a domain name")
    try:
        return dns.name.from_text(name).to_text()
    except dns.exception.DNSException as exc:
        raise ValueError(f"{name!r} is not a domain name: {exc}") from None


@dataclass
class _Record:
    set_identifier: str
    weight: int
    ttl: int
    value: str
    rdata: dns.rdata.Rdata  # the value, parsed once


def choose(weights: list[int], rng: random.Random) -> int:
    """Index of the record set that answers: weight / sum; all zero: equal."""
    total = sum(weights)
    if total == 0:
        return rng.randrange(len(weights))
    x = rng.randrange(total)
    for i, w in enumerate(weights):
        if x < w:
            return i
        x -= w
    raise AssertionError("unreachable")


class Zone:
    """The hosted zone's records and the answers to queries (no I/O)."""

    def __init__(self, config: Route53Config, time_scale: float = 1.0, rng: random.Random | None = None) -> None:
        self.origin = dns.name.from_text(config.HostedZone.Name)
        self.time_scale = time_scale
        self.rng = rng or random.Random()
        self._groups: dict[tuple[str, str], list[_Record]] = {
            key: [_Record(rs.SetIdentifier, rs.Weight, rs.TTL, rs.value,
                          dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rs.Type), rs.value))
                  for rs in sets]
            for key, sets in config.groups().items()}
        self._names = {name for name, _ in self._groups}
        self.answered = 0  # queries answered (any rcode)

    # -- weights (ChangeResourceRecordSets' role) ------------------------------

    def weights(self, name: str, rtype: str = "A") -> dict[str, int]:
        """Weight by SetIdentifier of the group `name` `rtype`."""
        return {r.set_identifier: r.weight for r in self._group(name, rtype)}

    def set_weights(self, name: str, weights: dict[str, int], rtype: str = "A") -> dict[str, int]:
        """Change weights of the group at once (all or none); returns the read-back."""
        group = {r.set_identifier: r for r in self._group(name, rtype)}
        for sid, w in weights.items():
            if sid not in group:
                raise KeyError(f"{name} {rtype} has no record with SetIdentifier {sid!r} "
                               f"(it has {', '.join(group)})")
            if not isinstance(w, int) or not 0 <= w <= 255:
                raise ValueError(f"Weight {w!r} for {sid!r} is out of Route 53's range 0..255")
        for sid, w in weights.items():
            group[sid].weight = w
        return self.weights(name, rtype)

    def ttl(self, name: str, rtype: str = "A") -> dict[str, int]:
        """The TTL each record set is served with (seconds, scaled)."""
        return {r.set_identifier: self._served_ttl(r.ttl) for r in self._group(name, rtype)}

    def _group(self, name: str, rtype: str) -> list[_Record]:
        key = (absolute(name).lower(), rtype)
        if key not in self._groups:
            raise KeyError(f"no weighted records {name} {rtype} in {self.origin}")
        return self._groups[key]

    def _served_ttl(self, ttl: int) -> int:
        if ttl == 0 or self.time_scale == 1:
            return ttl
        return max(1, math.ceil(ttl / self.time_scale))

    # -- answers ----------------------------------------------------------------

    def answer_wire(self, wire: bytes) -> bytes | None:
        """The answer to one DNS message, or None to drop it (not even a header)."""
        self.answered += 1
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except dns.exception.DNSException:
            return formerr(wire)
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer one (no loops)
        try:
            return self.answer(query).to_wire()
        except dns.exception.DNSException:
            return formerr(wire)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        resp = dns.message.make_response(query)
        resp.flags &= ~dns.flags.RA  # authoritative only: no recursion
        if query.opcode() != dns.opcode.QUERY:
            resp.set_rcode(dns.rcode.NOTIMP)
            return resp
        if len(query.question) != 1:
            resp.set_rcode(dns.rcode.FORMERR)
            return resp
        q = query.question[0]
        if q.rdclass != dns.rdataclass.IN or not q.name.is_subdomain(self.origin):
            resp.set_rcode(dns.rcode.REFUSED)
            return resp
        resp.flags |= dns.flags.AA
        name = q.name.to_text().lower()
        rtype = dns.rdatatype.to_text(q.rdtype)
        if q.name == self.origin and q.rdtype == dns.rdatatype.SOA:
            resp.answer.append(self._soa())
            return resp
        group = self._groups.get((name, rtype))
        if group:
            r = group[choose([x.weight for x in group], self.rng)]
            resp.answer.append(dns.rrset.from_rdata(q.name, self._served_ttl(r.ttl), r.rdata))
            return resp
        if name not in self._names and q.name != self.origin:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        resp.authority.append(self._soa())
        return resp

    def _soa(self) -> dns.rrset.RRset:
        ns = dns.name.Name(("ns-1", *self.origin.labels))
        host = dns.name.Name(("hostmaster", *self.origin.labels))
        return dns.rrset.from_text(self.origin, self._served_ttl(SOA_TTL), "IN", "SOA",
                                   f"{ns} {host} " + " ".join(map(str, SOA_TIMES)))


def formerr(wire: bytes) -> bytes | None:
    """FORMERR echoing the query's id (and opcode), when it has a header."""
    if len(wire) < 12:
        return None
    qid, flags = struct.unpack("!HH", wire[:4])
    if flags & 0x8000:
        return None  # a response: never answered
    opcode_bits = flags & 0x7800
    return struct.pack("!HHHHHH", qid, 0x8000 | opcode_bits | dns.rcode.FORMERR, 0, 0, 0, 0)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # selector transports do not subclass it

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            out = self.zone.answer_wire(data)
        except Exception:  # whatever one packet does, the server goes on
            out = formerr(data)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        return None  # an ICMP error for an earlier answer: nothing to do


class DnsServer:
    """The zone served over UDP and TCP on one loopback address and port."""

    def __init__(self, zone: Zone, address: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = zone
        self.address = address
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # TCP first: with port 0 it picks the port, and UDP takes the same number.
        self._tcp = await asyncio.start_server(self._serve_tcp, self.address, self.port)
        self.port = self._tcp.sockets[0].getsockname()[1]
        try:
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self.zone),
                                                               local_addr=(self.address, self.port))
        except OSError:
            self._tcp.close()
            raise

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                (length,) = struct.unpack("!H", head)
                wire = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_SECONDS)
                try:
                    out = self.zone.answer_wire(wire)
                except Exception:
                    out = formerr(wire)
                if out is None:
                    return  # not even a header: the stream is out of step, close it
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for t in list(self._conns):
                t.cancel()
            await self._tcp.wait_closed()
            self._tcp = None

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
