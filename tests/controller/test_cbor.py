"""The CloudWatch endpoint's CBOR codec: RFC 8949's Appendix A examples
(https://www.rfc-editor.org/rfc/rfc8949.html#name-examples-of-encoded-cbor-da),
round trips, and malformed input refused with CBORError, never a crash."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shiftlab.controller import cbor


@pytest.mark.parametrize(
    ("hex_", "value"),
    [
        ("00", 0), ("17", 23), ("1818", 24), ("1903e8", 1000), ("1b000000e8d4a51000", 1000000000000),
        ("20", -1), ("3863", -100), ("f93c00", 1.0), ("f97bff", 65504.0), ("fa47c35000", 100000.0),
        ("fb3ff199999999999a", 1.1), ("f4", False), ("f5", True), ("f6", None),
        ("c11a514b67b0", 1363896240), ("c1fb41d452d9ec200000", 1363896240.5),
        ("6449455446", "IETF"), ("62c3bc", "\u00fc"), ("4401020304", b"\x01\x02\x03\x04"),
        ("83010203", [1, 2, 3]), ("a201020304", {1: 2, 3: 4}),
        ("a26161016162820203", {"a": 1, "b": [2, 3]}),
        ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),  # indefinite lengths
        ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
        ("7f657374726561646d696e67ff", "streaming"),
    ],
)
def test_rfc_8949_examples_decode(hex_: str, value: Any) -> None:
    assert cbor.loads(bytes.fromhex(hex_)) == value


def test_infinity_decodes_to_infinity() -> None:
    assert math.isinf(cbor.loads(bytes.fromhex("f97c00")))


@pytest.mark.parametrize("value", [
    {"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": 1.5, "Counts": [1, 2], "Unit": "None"}]},
    [0, 23, 24, 255, 256, 65536, 2**32, -1, -(2**40), "é", b"\x00", None, True, False, 1e300],
])
def test_round_trip(value: Any) -> None:
    assert cbor.loads(cbor.dumps(value)) == value


def test_timestamps_encode_as_tag_1() -> None:
    assert cbor.dumps(cbor.Timestamp(1363896240.5)) == bytes.fromhex("c1fb41d452d9ec200000")


@pytest.mark.parametrize("hex_", [
    "", "18", "62c3", "830102", "a1", "ff", "1c", "fc", "8301020304", "62c328", "a18201020304",
    "9f" * 100 + "ff" * 100,
])
def test_malformed_input_is_a_cbor_error(hex_: str) -> None:
    with pytest.raises(cbor.CBORError):
        cbor.loads(bytes.fromhex(hex_))
