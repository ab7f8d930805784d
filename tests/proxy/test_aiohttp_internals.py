"""The aiohttp internals the listener builds on, in one place. aiohttp has
no public API for these; pyproject.toml pins aiohttp to the minor release
they were checked against (3.14.x), and this module fails first when a new
release changes one of them. Each is also exercised end to end by the
tests named beside it.

- RequestHandler (aiohttp.web_protocol) subclassed with its constructor's
  keyword arguments; its request queue bound `_max_msg_queue_size` /
  `_msg_queue_resume_size` and its `_parser`, rebuilt with a smaller
  `max_msg_queue_size` (test_hostile_clients: pipelining).
- RequestHandler.set_parser, which hands the bytes after an accepted upgrade
  to an object with feed_data/feed_eof (test_forwarding: WebSocket tunnel).
- RequestHandler.handle_error, overridden for ALB's error pages
  (test_alb_errors: refused requests).
- web.StreamResponse's `_eof_sent` and `_keep_alive`, which a response
  written by hand sets as aiohttp's own do (every forwarded response).
- Server.__call__, `_loop` and `_kwargs`, to make our handler per connection.
- The parser calls RequestHandler makes (RequestParser wraps the C parser
  and must offer each), llhttp's messages for what it refuses that ALB
  accepts, and HttpRequestParserPy.parse_message, overridden to classify
  heads (test_desync).
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from aiohttp import http_parser, web, web_protocol
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError
from aiohttp.http_parser import HttpRequestParser, HttpRequestParserPy
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from shiftlab.proxy.server import (
    _FALLBACK_ERRORS,
    PIPELINE_DEPTH,
    AlbRequestHandler,
    ClassifiedMessage,
    RawResponse,
    RequestParser,
)


def test_the_request_handler_keeps_what_we_replace() -> None:
    slots = set().union(*(getattr(c, "__slots__", ()) for c in RequestHandler.__mro__))
    assert {"_max_msg_queue_size", "_msg_queue_resume_size", "_parser", "_message_tail", "_payload_parser"} <= slots
    params = inspect.signature(RequestHandler.__init__).parameters
    assert {"manager", "loop", "read_bufsize"} <= set(params)
    assert list(inspect.signature(RequestHandler.handle_error).parameters) == [
        "self", "request", "status", "exc", "message"]
    assert list(inspect.signature(RequestHandler.set_parser).parameters)[:2] == ["self", "parser"]


async def test_our_handler_queues_at_most_a_few_pipelined_requests() -> None:
    server = Server(lambda request: None)  # type: ignore[arg-type, return-value]
    assert {"_loop", "_kwargs"} <= set(vars(server))
    handler = AlbRequestHandler(server, loop=server._loop, **server._kwargs)
    assert handler._max_msg_queue_size == PIPELINE_DEPTH
    assert isinstance(handler._parser, RequestParser) and isinstance(handler._parser, HttpRequestParser)


def test_what_the_fallback_relies_on() -> None:
    # The handler reads `_parser` at each call (the fallback replaces it),
    # and drops a message from `_messages` as it tells the parser.
    source = inspect.getsource(web_protocol)
    assert "self._parser.feed_data(" in source
    assert "self._messages.popleft()" in source and "self._parser.message_consumed()" in source
    assert list(inspect.signature(HttpRequestParserPy.parse_message).parameters) == ["self", "lines"]
    # Its Python parser builds the C message type: ClassifiedMessage extends that.
    assert issubclass(ClassifiedMessage, http_parser.RawRequestMessage)


@pytest.mark.parametrize("head", [
    b"CUSTOM-METHOD / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
])
async def test_llhttp_refusals_we_fall_back_on(head: bytes) -> None:
    class Protocol:
        def pause_reading(self) -> None: ...
        def resume_reading(self) -> None: ...

    parser = HttpRequestParser(Protocol(), asyncio.get_running_loop(), 2**16)  # type: ignore[arg-type]
    with pytest.raises(HttpProcessingError) as exc:
        parser.feed_data(head)
    assert isinstance(exc.value, BadHttpMethod) or any(e in exc.value.message for e in _FALLBACK_ERRORS)


def test_a_response_written_by_hand_looks_finished_to_aiohttp() -> None:
    resp = RawResponse(200, b"HTTP/1.1 200 OK\r\n\r\n", keep_alive=False)
    assert resp.keep_alive is False  # aiohttp reads `_keep_alive` through this property
    made_by_aiohttp = web.StreamResponse(status=200)
    assert made_by_aiohttp._eof_sent is False and made_by_aiohttp._keep_alive is None
