"""A small CBOR codec (RFC 8949) for the CloudWatch endpoint: botocore
speaks CloudWatch in the Smithy RPC v2 CBOR protocol.

`loads(data)` decodes one data item: definite and indefinite lengths,
integers, floats (half, single, double), text, bytes, arrays, maps, simple
values; tag 1 (epoch time) gives its number, other tags their content.
Raises `CBORError` on anything malformed, truncated or nested too deeply.

`dumps(value)` encodes dict, list/tuple, str, bytes, bool, None, int and
float (as a double); a `Timestamp` as tag 1 with epoch seconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 64


class CBORError(ValueError):
    pass


@dataclass(frozen=True)
class Timestamp:
    """Epoch seconds, encoded as CBOR tag 1."""

    seconds: float


_BREAK = object()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CBORError(f"truncated at byte {self.pos} (wanted {n} more)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def argument(self, info: int) -> int | None:
        """The head's argument; None for an indefinite length (31)."""
        if info < 24:
            return info
        if info in (24, 25, 26, 27):
            return int.from_bytes(self.take(1 << (info - 24)), "big")
        if info == 31:
            return None
        raise CBORError(f"reserved additional information {info} at byte {self.pos - 1}")

    def item(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CBORError(f"nested more than {MAX_DEPTH} levels deep")
        head = self.take(1)[0]
        major, info = head >> 5, head & 31
        if major == 7:
            return self._simple(info)
        arg = self.argument(info)
        if major == 0:
            return _definite(arg)
        if major == 1:
            return -1 - _definite(arg)
        if major in (2, 3):
            raw = self._string(major, arg, depth)
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CBORError("a text string is not UTF-8") from None
        if major == 4:
            out: list[Any] = []
            while arg is None or len(out) < arg:
                value = self.item(depth + 1)
                if value is _BREAK:
                    if arg is None:
                        return out
                    raise CBORError("unexpected break in a definite-length array")
                out.append(value)
            return out
        if major == 5:
            result: dict[Any, Any] = {}
            n = 0
            while arg is None or n < arg:
                key = self.item(depth + 1)
                if key is _BREAK and arg is None:
                    return result
                if key is _BREAK or isinstance(key, dict | list):
                    raise CBORError("a map key must be a string or a number")
                value = self.item(depth + 1)
                if value is _BREAK:
                    raise CBORError("a map key without a value")
                result[key] = value
                n += 1
            return result
        # major 6: a tag; tag 1 is epoch time, the others are read through.
        return self.item(depth + 1)

    def _string(self, major: int, arg: int | None, depth: int) -> bytes:
        if arg is not None:
            return self.take(arg)
        chunks: list[bytes] = []
        while True:
            head = self.take(1)[0]
            if head == 0xFF:
                return b"".join(chunks)
            if head >> 5 != major:
                raise CBORError("a chunk of an indefinite-length string has another type")
            chunks.append(self.take(_definite(self.argument(head & 31))))

    def _simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            return _BREAK
        raise CBORError(f"unsupported simple value {info}")


def _definite(arg: int | None) -> int:
    if arg is None:
        raise CBORError("an indefinite length where only a number may be")
    return arg


def loads(data: bytes) -> Any:
    reader = _Reader(data)
    value = reader.item()
    if value is _BREAK:
        raise CBORError("a break outside an indefinite-length item")
    if reader.pos != len(data):
        raise CBORError(f"{len(data) - reader.pos} bytes after the data item")
    return value


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise CBORError(f"{n} is too large for CBOR")


def _encode(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif isinstance(value, float):
        out += b"\xfb" + struct.pack(">d", value)
    elif isinstance(value, Timestamp):
        out += b"\xc1\xfb" + struct.pack(">d", float(value.seconds))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out += _head(3, len(raw)) + raw
    elif isinstance(value, bytes | bytearray):
        out += _head(2, len(value)) + value
    elif isinstance(value, list | tuple):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        out += _head(5, len(value))
        for k, v in value.items():
            _encode(k, out)
            _encode(v, out)
    else:
        raise CBORError(f"cannot encode {type(value).__name__}")


def dumps(value: Any) -> bytes:
    out = bytearray()
    _encode(value, out)
    return bytes(out)
