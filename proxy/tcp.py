"""A network load balancer's data plane: layer 4, one flow per TCP connection.

A listener's default action picks a target group by weight for each new
connection (flow), then a target in it; the bytes then go both ways
unread until either side closes, so a flow stays on its target whatever
the weights become, as on NLB. Draining targets get no new flows; theirs
stay open until they end, or until the deregistration delay ends when the
group's `deregistration_delay.connection_termination.enabled` is true.

Memory per flow is bounded: each side's writes are buffered up to
HIGH_WATER, past which the other side is no longer read (asyncio's flow
control: pause_writing -> pause_reading), so a client that never reads
makes the target wait, not the proxy grow. A half-close (FIN) is passed on
as a half-close; a reset (RST) as a reset; a flow with no data either way
for the idle timeout (NLB's 350 s) is reset on both sides, as NLB forgets
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any, cast

from shiftlab.proxy.state import Choice, ListenerState, LoadBalancerState, Target, TargetGroupState
from shiftlab.proxy.stats import Counters

HIGH_WATER = 64 * 1024  # buffered toward one side before the other side is no longer read
CONNECT_TIMEOUT = 10.0  # as the HTTP path's connect timeout to a target
_LINGER_RESET = struct.pack("ii", 1, 0)


def reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with a TCP RST rather than a FIN (SO_LINGER 0), dropping what is buffered."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()  # type: ignore[attr-defined]


class Flow(asyncio.Protocol):
    """One client connection (the protocol of the client's side) and its
    connection to the chosen target (`TargetSide`)."""

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.loop = listener.loop
        self.client: asyncio.Transport | None = None
        self.target_transport: asyncio.Transport | None = None
        self.target: Target | None = None
        self.group: TargetGroupState | None = None
        self.counters: Counters = listener.listener.counters
        self.last = self.loop.time()
        self.client_eof = self.target_eof = False
        self.ended = False
        self.idle_handle: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        # What the client sent before the target's connection opened (uvloop
        # may deliver it though reading is paused): at most about HIGH_WATER.
        self.early: list[bytes] = []

    # -- the client's side ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but are ones.)
        self.client = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=HIGH_WATER)
        transport.pause_reading()  # until the target is connected
        lst = self.listener
        lst.flows.add(self)
        fwd = lst.listener.default.forward
        choice: Choice | None = fwd.picker.pick() if fwd is not None and fwd.picker else None
        target = choice.group.choose() if choice is not None else None
        if choice is None or target is None:
            # No target group with weight or no target to send it to: NLB resets the connection.
            (choice.counters if choice is not None else self.counters).resets_elb += 1
            self._end(reset_client=True)
            return
        self.counters = choice.counters
        self.group = choice.group
        self.target = target
        target.outstanding += 1
        target.flows.add(self)
        self.counters.flows_new += 1
        self.counters.flows_active += 1
        self.connecting = self.loop.create_task(self._connect(target))
        self._arm_idle()

    async def _connect(self, target: Target) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                transport, _ = await self.loop.create_connection(
                    lambda: TargetSide(self), target.host, target.port)
        except (OSError, TimeoutError):
            if not self.ended:
                self.counters.conn_errors += 1
                self.counters.resets_elb += 1
                self._end(reset_client=True)
            return
        if self.ended:
            transport.abort()
            return
        self.target_transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        if self.early:
            transport.write(b"".join(self.early))
            self.early.clear()
        if self.client_eof and transport.can_write_eof():
            transport.write_eof()
        if self.client is not None and not self.client.is_closing():
            self.client.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        self.counters.bytes += len(data)
        t = self.target_transport
        if t is None:
            self.early.append(data)
            if sum(map(len, self.early)) > HIGH_WATER and self.client is not None:
                self.client.pause_reading()
        elif not t.is_closing():
            t.write(data)

    def eof_received(self) -> bool:
        """The client half-closed: so does the connection to the target;
        the client may still read what the target sends."""
        self.client_eof = True
        t = self.target_transport
        if t is not None and not t.is_closing() and t.can_write_eof():
            t.write_eof()
        if self.target_eof:
            self._end()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.ended:
            return
        if isinstance(exc, OSError):  # ECONNRESET and the like: the client reset
            self.counters.resets_client += 1
            self._end(reset_target=True)
        else:
            self._end()

    def pause_writing(self) -> None:  # the client does not take what the target sends
        if self.target_transport is not None:
            self.target_transport.pause_reading()

    def resume_writing(self) -> None:
        t = self.target_transport
        if t is not None and not t.is_closing():
            t.resume_reading()

    # -- from the target's side ----------------------------------------------

    def from_target(self, data: bytes) -> None:
        self.last = self.loop.time()
        self.counters.bytes += len(data)
        c = self.client
        if c is not None and not c.is_closing():
            c.write(data)

    def target_eof_received(self) -> None:
        self.target_eof = True
        c = self.client
        if c is not None and not c.is_closing() and c.can_write_eof():
            c.write_eof()
        if self.client_eof:
            self._end()

    def target_lost(self, exc: BaseException | None) -> None:
        if self.ended:
            return
        if isinstance(exc, OSError):
            self.counters.resets_target += 1
            self._end(reset_client=True)
        else:
            self._end()

    def target_paused(self) -> None:  # the target does not take what the client sends
        if self.client is not None:
            self.client.pause_reading()

    def target_resumed(self) -> None:
        c = self.client
        if c is not None and not c.is_closing() and self.target_transport is not None:
            c.resume_reading()

    # -- the flow's end ---------------------------------------------------

    def _arm_idle(self) -> None:
        idle = self.listener.idle_timeout
        self.idle_handle = self.loop.call_at(self.last + idle, self._idle_check)

    def _idle_check(self) -> None:
        if self.ended:
            return
        if self.loop.time() - self.last >= self.listener.idle_timeout:
            # NLB forgets a flow idle this long; either side's next packet
            # gets a reset. Here both sides get it now.
            self.counters.resets_elb += 1
            self._end(reset_client=True, reset_target=True)
            return
        self._arm_idle()

    def terminate(self) -> None:
        """The deregistration delay ended with connection termination enabled."""
        if not self.ended:
            self.counters.resets_elb += 1
            self._end(reset_client=True, reset_target=True)

    def _end(self, reset_client: bool = False, reset_target: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()
        for transport, hard in ((self.client, reset_client), (self.target_transport, reset_target)):
            if transport is None:
                continue
            if hard:
                reset(transport)
            else:
                transport.close()  # what is buffered is sent first, then a FIN
        self.listener.flows.discard(self)
        t = self.target
        if t is not None:
            self.counters.flows_active -= 1
            t.outstanding -= 1
            t.flows.discard(self)
            if self.group is not None:
                self.group.request_done(t)


class TargetSide(asyncio.Protocol):
    """The connection to the target: everything goes to its Flow."""

    __slots__ = ("flow",)

    def __init__(self, flow: Flow) -> None:
        self.flow = flow

    def data_received(self, data: bytes) -> None:
        self.flow.from_target(data)

    def eof_received(self) -> bool:
        self.flow.target_eof_received()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.flow.target_lost(exc)

    def pause_writing(self) -> None:
        self.flow.target_paused()

    def resume_writing(self) -> None:
        self.flow.target_resumed()


class TcpListener:
    """One TCP listener: its server socket and its open flows."""

    def __init__(self, lb: LoadBalancerState, listener: ListenerState, idle_timeout: float) -> None:
        self.lb = lb
        self.listener = listener
        self.idle_timeout = idle_timeout
        self.loop = asyncio.get_running_loop()
        self.flows: set[Flow] = set()
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> asyncio.AbstractServer:
        self.server = await self.loop.create_server(
            lambda: Flow(self), self.listener.conf.Address, self.listener.port, reuse_address=True, backlog=1024)
        return self.server

    def pre_shutdown(self) -> None:
        pass

    async def shutdown(self, timeout: float = 1.0) -> None:
        """The load balancer stops: every open flow is reset."""
        for flow in list(self.flows):
            flow.terminate()


async def serve_tcp_listener(lb: LoadBalancerState, listener: ListenerState,
                             idle_timeout: float) -> tuple[asyncio.AbstractServer, Any]:
    tl = TcpListener(lb, listener, idle_timeout)
    return await tl.start(), tl
