"""Metric math: what parses, what each form yields per period, and how a bad
expression is reported."""

from __future__ import annotations

import pytest

from shiftlab.controller.metricmath import MathError, parse_expression

N = None  # a missing datapoint, short so the tables line up

ENV: dict[str, list[float | None]] = {
    "blue5xx": [1.0, N, 4.0, N],
    "green5xx": [2.0, 3.0, N, N],
    "errors": [5.0, 1.0, N, 2.0],
    "requests": [50.0, 0.0, 10.0, 8.0],
    "lat": [0.2, N, 0.9, 0.4],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the walkthrough's forms
        ("SUM([blue5xx, green5xx])", [3.0, 3.0, 4.0, N]),
        ("MAX([blue5xx, green5xx])", [2.0, 3.0, 4.0, N]),
        ("errors/requests*100", [10.0, N, N, 25.0]),  # division by zero and a missing operand: missing
        # array aggregates skip missing members
        ("MIN([blue5xx, green5xx])", [1.0, 3.0, 4.0, N]),
        ("AVG([blue5xx, green5xx])", [1.5, 3.0, 4.0, N]),
        ("SUM([blue5xx, green5xx * 10])", [21.0, 30.0, 4.0, N]),
        # one series: one number over the whole window, as CloudWatch does
        ("MAX(lat)", [0.9, 0.9, 0.9, 0.9]),
        ("lat - MIN(lat)", [0.0, N, pytest.approx(0.7), pytest.approx(0.2)]),
        ("AVG(requests)", [17.0] * 4),
        ("SUM(blue5xx)", [5.0] * 4),
        # arithmetic, precedence, unary minus, parentheses
        ("blue5xx + green5xx", [3.0, N, N, N]),
        ("1 + 2 * 3", [7.0] * 4),
        ("(1 + 2) * 3", [9.0] * 4),
        ("10 - 4 - 3", [3.0] * 4),
        ("24 / 4 / 2", [3.0] * 4),
        ("-requests + 1", [-49.0, 1.0, -9.0, -7.0]),
        ("--2", [2.0] * 4),
        ("2 * -(requests - 10)", [-80.0, 20.0, 0.0, 4.0]),
        ("1 / 0", [N] * 4),
        (".5 * 4", [2.0] * 4),
        # ABS and FILL
        ("ABS(0 - requests)", [50.0, 0.0, 10.0, 8.0]),
        ("ABS(-lat)", [0.2, N, 0.9, 0.4]),
        ("FILL(errors, 0)", [5.0, 1.0, 0.0, 2.0]),
        ("FILL(blue5xx, green5xx)", [1.0, 3.0, 4.0, N]),
        ("FILL(errors, 0) / requests * 100", [10.0, N, 0.0, 25.0]),
        ("SUM([FILL(blue5xx, 0), FILL(green5xx, 0)])", [3.0, 3.0, 4.0, 0.0]),
    ],
)
def test_evaluates_per_period(text, expected):
    assert parse_expression(text).evaluate(ENV, 4) == expected


@pytest.mark.parametrize(
    ("text", "ids", "returns_series"),
    [
        ("SUM([blue5xx, green5xx])", {"blue5xx", "green5xx"}, True),
        ("errors/requests*100", {"errors", "requests"}, True),
        ("MAX(lat)", {"lat"}, False),
        ("lat / MAX(lat)", {"lat"}, True),
        ("2 * 3", set(), False),
        ("FILL(m_1, 0)", {"m_1"}, True),
    ],
)
def test_static_facts(text, ids, returns_series):
    expr = parse_expression(text)
    assert expr.ids == ids
    assert expr.returns_series is returns_series
    assert expr.source == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'': the expression is empty"),
        ("   ", "the expression is empty"),
        ("SUM([a,", "'SUM([a,': expected a number, an Id or a function, found nothing at the end"),
        ("a +", "found nothing at the end"),
        ("a b", "unexpected 'b' at position 2"),
        ("(a + b", "expected ')', found nothing at the end"),
        ("a ^ 2", "'a ^ 2': unexpected '^' at position 2"),
        ("a; b", "unexpected ';' at position 1"),
        ("sum([a, b])", "sum() is not a function shiftlab supports (SUM, MAX, MIN, AVG, ABS, FILL) at position 0"),
        ("METRICS()", "METRICS() is not a function shiftlab supports"),
        ("ANOMALY_DETECTION_BAND(m1, 2)", "ANOMALY_DETECTION_BAND() is not a function shiftlab supports"),
        ("Errors / requests", "'Errors' is not an Id (Ids start with a lowercase letter"),
        ("FILL(a)", "FILL() takes 2 arguments, got 1"),
        ("ABS(a, b)", "ABS() takes 1 argument, got 2"),
        ("SUM(a, b)", "SUM() takes 1 argument, got 2"),
        ("[a, b]", "an array [..] is allowed only as the argument of SUM, MAX, MIN, AVG at position 0"),
        ("ABS([a, b])", "an array [..] is allowed only as the argument of"),
        ("SUM([])", "an array needs at least one member at position 5"),
        ("SUM([a, b]) + [c]", "an array [..] is allowed only"),
        ("SUM([a, b] + 1)", "expected ')', found '+'"),
    ],
)
def test_refused_with_the_expression_named(text, message):
    with pytest.raises(MathError) as err:
        parse_expression(text)
    assert message in str(err.value)
    assert repr(text) in str(err.value)


def test_series_of_the_wrong_length_is_a_caller_bug():
    with pytest.raises(ValueError, match="has 2 datapoints, expected 3"):
        parse_expression("a + 1").evaluate({"a": [1.0, 2.0]}, 3)
