"""shiftlab's authoritative DNS server (proxy/dns.py), as Route 53's weighted
routing answers, over real UDP and TCP sockets on 127.0.0.1, asked by
dnspython and by Debian's `dig` (dnsutils).

Route 53's rules checked here:
- https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-policy-weighted.html
  "Amazon Route 53 sends traffic to a resource based on the weight that you
  assign to the record as a proportion of the total weight for all records
  in the group: weight for a specified record / sum of the weights for all
  records" (their example: weights 1 and 255, 1/256th of the traffic).
- https://docs.aws.amazon.com/Route53/latest/APIReference/API_ResourceRecordSet.html
  (Weight): "Weight 0..255"; "if you set Weight to 0 for a resource record
  set, Route 53 never responds to queries with the applicable value for that
  resource record set. However, if you set Weight to 0 for all resource
  record sets that have the same combination of DNS name and type, traffic
  is routed to all resources with equal probability"; "You can only specify
  one ResourceRecord per weighted resource record set".
- https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/resource-record-sets-values-weighted.html
  (TTL: how long resolvers cache the record; Record ID = SetIdentifier).
- https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/SOA-NSrecords.html
  (the SOA's times, returned with a negative answer).

Not in AWS's documentation, so as authoritative servers answer (RFC 1035
4.1.1 and RFC 2308): REFUSED for a name outside every zone the server
hosts (what Route 53's name servers are seen to answer), NXDOMAIN with the
SOA for a name the zone lacks, NODATA for a type the name lacks, FORMERR for
a message that does not parse.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import struct
from collections import Counter
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from shiftlab.common.configfile import ConfigError, parse
from shiftlab.dnsresolver import TtlResolver, query_a
from shiftlab.proxy.dns import DnsServer, Route53Config, Zone, choose

BLUE, GREEN = "127.0.0.2", "127.0.0.3"
NAME = "app.shiftlab.test."


def config(blue: int = 255, green: int = 0, ttl: int = 60, **more: Any) -> Route53Config:
    return Route53Config.model_validate({
        "HostedZone": {"Name": "shiftlab.test"}, "Port": 0, **more,
        "ResourceRecordSets": [
            {"Name": "app.shiftlab.test", "Type": "A", "TTL": ttl, "SetIdentifier": "blue", "Weight": blue,
             "ResourceRecords": [{"Value": BLUE}]},
            {"Name": "app.shiftlab.test", "Type": "A", "TTL": ttl, "SetIdentifier": "green", "Weight": green,
             "ResourceRecords": [{"Value": GREEN}]},
        ]})


async def serve(cfg: Route53Config, time_scale: float = 1.0, seed: int = 7) -> DnsServer:
    server = DnsServer(Zone(cfg, time_scale, random.Random(seed)), "127.0.0.1", 0)
    await server.start()
    return server


async def ask(server: DnsServer, name: str = NAME, rtype: str = "A", tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rtype)
    if tcp:
        return await dns.asyncquery.tcp(q, "127.0.0.1", port=server.port, timeout=2)
    return await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, timeout=2)


def address(resp: dns.message.Message) -> str:
    return str(resp.answer[0][0].address)


def dig_path() -> str:
    path = shutil.which("dig")
    if path is None:
        if os.environ.get("SHIFTLAB_REQUIRE_DIG") == "1":
            pytest.fail("dig (Debian's dnsutils) is required here (SHIFTLAB_REQUIRE_DIG=1)")
        pytest.skip("dig not installed (apt-get install dnsutils)")
    return path


async def dig(server: DnsServer, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        dig_path(), "@127.0.0.1", "-p", str(server.port), "+tries=1", "+time=2", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return out.decode()


# -- the choice itself, by table -------------------------------------------------

@pytest.mark.parametrize(("weights", "n", "expected_shares"), [
    ([1, 255], 25600, [1 / 256, 255 / 256]),  # the developer guide's example
    ([3, 1], 4000, [0.75, 0.25]),
    ([0, 0], 4000, [0.5, 0.5]),  # all zero: equal probability
    ([0, 0, 0, 0], 4000, [0.25] * 4),
    ([10, 0], 1000, [1.0, 0.0]),  # zero: never answered
    ([255, 255], 4000, [0.5, 0.5]),
])
def test_choice_is_weight_over_sum(weights: list[int], n: int, expected_shares: list[float]) -> None:
    rng = random.Random(1)
    counts = Counter(choose(weights, rng) for _ in range(n))
    for i, share in enumerate(expected_shares):
        got = counts[i] / n
        if share in (0.0, 1.0):
            assert got == share
        else:  # within 5 standard deviations of a binomial
            sd = (share * (1 - share) / n) ** 0.5
            assert abs(got - share) < 5 * sd, (i, got, share)


# -- the section's fields, with Route 53's names and ranges ----------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"Weight": 256}, "ResourceRecordSets.0.Weight"),
    ({"Weight": -1}, "ResourceRecordSets.0.Weight"),
    ({"TTL": -1}, "ResourceRecordSets.0.TTL"),
    ({"SetIdentifier": ""}, "ResourceRecordSets.0.SetIdentifier"),
    ({"SetIdentifier": "x" * 129}, "ResourceRecordSets.0.SetIdentifier"),
    ({"ResourceRecords": [{"Value": BLUE}, {"Value": GREEN}]}, "ResourceRecordSets.0.ResourceRecords"),
    ({"ResourceRecords": [{"Value": "lb.example.com"}]}, "ResourceRecordSets.0"),
    ({"Type": "AAAA"}, "ResourceRecordSets.0"),
    ({"Type": "MX"}, "ResourceRecordSets.0.Type"),
    ({"Name": "app.elsewhere.test"}, "route53"),
    ({"SetIdentifier": "green"}, "route53"),
])
def test_a_bad_record_set_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    data = config().model_dump()
    data["ResourceRecordSets"][0].update(change)
    with pytest.raises(ConfigError) as err:
        parse(Route53Config, data, "route53")
    assert any(p.startswith(field.replace("ResourceRecordSets.0", "route53.ResourceRecordSets[0]")
                            if field != "route53" else "route53") for p in err.value.problems), err.value.problems


def test_a_non_loopback_address_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"route53\.Address: .*loopback"):
        parse(Route53Config, {**config().model_dump(), "Address": "0.0.0.0"}, "route53")


# -- answers over the wire ----------------------------------------------------------------

async def test_weighted_distribution_over_udp() -> None:
    server = await serve(config(blue=3, green=1))
    try:
        n = 800
        counts: Counter[str] = Counter()
        for _ in range(n):
            resp = await ask(server)
            assert resp.rcode() == dns.rcode.NOERROR and resp.flags & dns.flags.AA
            assert len(resp.answer) == 1 and len(resp.answer[0]) == 1  # one answer per query
            counts[address(resp)] += 1
        share = counts[GREEN] / n
        assert abs(share - 0.25) < 5 * (0.25 * 0.75 / n) ** 0.5, counts
    finally:
        await server.stop()


async def test_zero_weight_is_never_answered_and_weights_change_live() -> None:
    server = await serve(config(blue=255, green=0))
    try:
        assert {address(await ask(server)) for _ in range(50)} == {BLUE}
        assert server.zone.set_weights(NAME, {"blue": 0, "green": 10}) == {"blue": 0, "green": 10}
        assert {address(await ask(server)) for _ in range(50)} == {GREEN}
        server.zone.set_weights(NAME, {"blue": 0, "green": 0})
        assert {address(await ask(server)) for _ in range(200)} == {BLUE, GREEN}  # all zero: both
        with pytest.raises(ValueError, match=r"0\.\.255"):
            server.zone.set_weights(NAME, {"blue": 256})
        with pytest.raises(KeyError, match="SetIdentifier 'red'"):
            server.zone.set_weights(NAME, {"red": 1})
    finally:
        await server.stop()


@pytest.mark.parametrize(("ttl", "time_scale", "served"), [
    (60, 1.0, 60), (300, 1.0, 300), (0, 1.0, 0), (60, 60.0, 1), (60, 20.0, 3), (1, 60.0, 1), (90, 60.0, 2),
])
async def test_the_answer_carries_the_records_ttl_scaled(ttl: int, time_scale: float, served: int) -> None:
    server = await serve(config(ttl=ttl), time_scale)
    try:
        assert (await ask(server)).answer[0].ttl == served
    finally:
        await server.stop()


@pytest.mark.parametrize(("name", "rtype", "rcode", "aa", "soa"), [
    ("nope.shiftlab.test.", "A", dns.rcode.NXDOMAIN, True, True),  # not in the zone's records
    ("APP.ShiftLab.Test.", "A", dns.rcode.NOERROR, True, False),  # names are case-insensitive
    ("app.shiftlab.test.", "AAAA", dns.rcode.NOERROR, True, True),  # NODATA: the name, not the type
    ("shiftlab.test.", "SOA", dns.rcode.NOERROR, True, False),  # the apex
    ("example.com.", "A", dns.rcode.REFUSED, False, False),  # not a zone this server hosts
    ("test.", "A", dns.rcode.REFUSED, False, False),
])
async def test_names_the_zone_has_not(name: str, rtype: str, rcode: int, aa: bool, soa: bool) -> None:
    server = await serve(config())
    try:
        resp = await ask(server, name, rtype)
        assert resp.rcode() == rcode
        assert bool(resp.flags & dns.flags.AA) == aa
        assert not resp.flags & dns.flags.RA  # authoritative only
        assert any(r.rdtype == dns.rdatatype.SOA for r in resp.authority) == soa
    finally:
        await server.stop()


async def test_tcp_queries_several_on_one_connection() -> None:
    server = await serve(config(blue=0, green=1))
    try:
        assert address(await ask(server, tcp=True)) == GREEN
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for qid in (11, 12, 13):
            q = dns.message.make_query(NAME, "A")
            q.id = qid
            wire = q.to_wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 2))
            resp = dns.message.from_wire(await asyncio.wait_for(reader.readexactly(length), 2))
            assert resp.id == qid and address(resp) == GREEN
        writer.close()
    finally:
        await server.stop()


@pytest.mark.parametrize(("packet", "answer"), [
    (b"", None),  # nothing: dropped
    (b"\x12\x34\x01", None),  # shorter than a header: dropped
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff", "FORMERR"),  # a question cut short
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" + b"a" * 10, "FORMERR"),  # label overruns
    (b"\x12\x34\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00", None),  # a response: never answered
    (bytes(range(256)) * 2, "FORMERR"),
])
async def test_malformed_packets_get_formerr_or_are_dropped_and_the_server_goes_on(
        packet: bytes, answer: str | None) -> None:
    server = await serve(config())
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            loop = asyncio.get_running_loop()
            await loop.sock_sendto(sock, packet, ("127.0.0.1", server.port))
            if answer is None:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.3)
            else:
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
                assert data[:2] == packet[:2]  # the query's id
                assert data[3] & 0x0F == dns.rcode.FORMERR and data[2] & 0x80
        finally:
            sock.close()
        assert address(await ask(server)) == BLUE  # still serving, UDP and TCP
        assert address(await ask(server, tcp=True)) == BLUE
    finally:
        await server.stop()


async def test_garbage_over_tcp_closes_that_connection_only() -> None:
    server = await serve(config())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x00\x03abc")  # a length-prefixed message with no header
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed
        writer.close()
        assert address(await ask(server, tcp=True)) == BLUE
    finally:
        await server.stop()


async def test_other_opcodes_are_not_implemented() -> None:
    server = await serve(config())
    try:
        q = dns.message.make_query(NAME, "A")
        q.set_opcode(dns.opcode.NOTIFY)
        resp = await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, timeout=2)
        assert resp.rcode() == dns.rcode.NOTIMP
    finally:
        await server.stop()


# -- a real DNS client: dig ------------------------------------------------------------------

async def test_dig_gets_the_weighted_answer_with_its_ttl_over_udp_and_tcp() -> None:
    server = await serve(config(blue=0, green=5, ttl=60))
    try:
        out = await dig(server, NAME, "A")
        assert "status: NOERROR" in out and "flags: qr aa" in out
        assert f"{NAME}\t60\tIN\tA\t{GREEN}" in out
        out = await dig(server, "+tcp", NAME, "A")
        assert f"{NAME}\t60\tIN\tA\t{GREEN}" in out and "(TCP)" in out
    finally:
        await server.stop()


async def test_dig_weighted_distribution() -> None:
    server = await serve(config(blue=1, green=1))
    try:
        n = 60
        counts: Counter[str] = Counter()
        for _ in range(n):
            out = (await dig(server, "+short", NAME)).strip()
            counts[out] += 1
        assert set(counts) == {BLUE, GREEN}
        assert all(12 <= c <= 48 for c in counts.values()), counts  # 1:1, n = 60: far beyond 4 sd apart
    finally:
        await server.stop()


@pytest.mark.parametrize(("name", "status"), [
    ("nope.shiftlab.test.", "NXDOMAIN"), ("example.com.", "REFUSED"),
])
async def test_dig_unknown_names(name: str, status: str) -> None:
    server = await serve(config())
    try:
        out = await dig(server, name)
        assert f"status: {status}" in out
    finally:
        await server.stop()


# -- shiftlab's resolver: the TTL honoured -------------------------------------------------------

async def test_shiftlabs_resolver_keeps_an_answer_until_its_ttl_ends() -> None:
    server = await serve(config(blue=255, green=0, ttl=30))
    now = [100.0]
    resolver = TtlResolver(("127.0.0.1", server.port), clock=lambda: now[0])
    try:
        assert (await resolver.resolve(NAME.rstrip("."), 80))[0]["host"] == BLUE
        server.zone.set_weights(NAME, {"blue": 0, "green": 255})
        now[0] += 29.9  # the old answer until the TTL ends, whatever the records say now
        assert (await resolver.lookup(NAME.rstrip("."))).address == BLUE
        assert resolver.queries == 1
        now[0] += 0.1
        assert (await resolver.lookup(NAME.rstrip("."))).address == GREEN
        assert resolver.queries == 2
        assert await query_a(("127.0.0.1", server.port), NAME) == (GREEN, 30)
    finally:
        await server.stop()


async def test_shiftlabs_resolver_fails_an_unknown_name() -> None:
    server = await serve(config())
    try:
        with pytest.raises(OSError, match="NXDOMAIN"):
            await TtlResolver(("127.0.0.1", server.port)).lookup("nope.shiftlab.test")
    finally:
        await server.stop()


# -- the load balancers behind the records: one port, an address each -----------------------

@pytest.mark.parametrize(("first", "second", "refused"), [
    ("127.0.0.2", "127.0.0.3", False),  # blue's and green's load balancers, the records' values
    ("127.0.0.2", "127.0.0.2", True),
    ("0.0.0.0", "127.0.0.3", True),  # the any address takes the port on every address
    ("127.0.0.2", "0.0.0.0", True),
])
def test_listeners_may_share_a_port_on_different_addresses(first: str, second: str, refused: bool) -> None:
    from shiftlab.proxy.config import load_balancer_from_dict

    def listener(name: str, address: str) -> dict[str, Any]:
        return {"Name": name, "Address": address, "Port": 8080,
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": name}]}

    data = {"Listeners": [listener("blue", first), listener("green", second)],
            "TargetGroups": [{"Name": "blue"}, {"Name": "green"}]}
    if refused:
        with pytest.raises(ConfigError, match=r"Listeners\[1\]\.Port: 8080 is used by Listeners\[0\]"):
            load_balancer_from_dict(data)
    else:
        assert [ls.Address for ls in load_balancer_from_dict(data).Listeners] == [first, second]
