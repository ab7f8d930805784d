"""Desync mitigation as ALB does it: each request classified by the tiers of
AWS's http_desync_guardian, then allowed, forwarded with both connections
closed after it, or refused, by the load balancer's
`routing.http.desync_mitigation_mode`.

ALB: https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#desync-mitigation-mode
Classification reasons: https://github.com/aws/http-desync-guardian/blob/master/docs/README.md

Pure logic: the server classifies a request head here only when aiohttp's
C parser (llhttp) refused it, or, for a parsed GET/HEAD, by its framing
headers; see proxy/server.py.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Final

MODES: Final = ("monitor", "defensive", "strictest")
DEFAULT_MODE: Final = "defensive"


class Tier(IntEnum):
    COMPLIANT = 0
    ACCEPTABLE = 1
    AMBIGUOUS = 2
    SEVERE = 3


# What the load balancer does with a request of each tier, by mode (the ALB
# page's table): forward it; forward it, then close the client and target
# connections ("close"); or refuse it with 400 and close ("refuse").
FORWARD: Final = "forward"
CLOSE: Final = "close"
REFUSE: Final = "refuse"
ACTIONS: Final[dict[str, tuple[str, str, str, str]]] = {
    "monitor": (FORWARD, FORWARD, FORWARD, FORWARD),
    "defensive": (FORWARD, FORWARD, CLOSE, REFUSE),
    "strictest": (FORWARD, REFUSE, REFUSE, REFUSE),
}


class Verdict:
    __slots__ = ("reason", "tier")

    def __init__(self, tier: Tier, reason: str) -> None:
        self.tier = tier
        self.reason = reason

    def __repr__(self) -> str:
        return f"Verdict({self.tier.name}, {self.reason})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verdict) and (self.tier, self.reason) == (other.tier, other.reason)

    def __hash__(self) -> int:
        return hash((self.tier, self.reason))


COMPLIANT: Final = Verdict(Tier.COMPLIANT, "Compliant")

# RFC 9110 5.6.2: token = 1*tchar
TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A request line's start: a method token and the space after it.
METHOD_START: Final = re.compile(rb"(?:\r\n)*[!#$%&'*+\-.^_`|~0-9A-Za-z]+ ")
DIGITS: Final = re.compile(rb"[0-9]+")
_BODYLESS: Final = (b"GET", b"HEAD")


def action(mode: str, verdict: Verdict) -> str:
    return ACTIONS[mode][verdict.tier]


def classify_head(lines: list[bytes]) -> tuple[Verdict, list[bytes]]:
    """The tier of a request head (its request line, header lines and the
    empty line, without line ends) and the head to parse and forward: with
    the Content-Length removed when Transfer-Encoding is present too (RFC
    9112 6.3: "A sender MUST remove the received Content-Length field prior
    to forwarding such a message"), and one Content-Length of duplicates of
    the same value. The most severe finding decides; framing the load
    balancer cannot establish is Severe."""
    method = lines[0].split(b" ", 1)[0]
    if not TOKEN.fullmatch(method):
        return Verdict(Tier.SEVERE, "BadMethod"), lines
    cl: list[int] = []
    te: list[int] = []
    for i in range(1, len(lines)):
        name = lines[i].split(b":", 1)[0].lower()
        if name == b"content-length":
            cl.append(i)
        elif name == b"transfer-encoding":
            te.append(i)
    found: list[Verdict] = []
    if te:
        codings = [c.strip().lower() for i in te for c in lines[i].split(b":", 1)[1].split(b",")]
        if codings.count(b"chunked") > 1:
            return Verdict(Tier.SEVERE, "MultipleTransferEncodingChunked"), lines
        if any(c not in (b"chunked", b"identity") for c in codings):
            return Verdict(Tier.SEVERE, "BadTransferEncoding"), lines
    if cl:
        values = {lines[i].split(b":", 1)[1].strip() for i in cl}
        if not all(DIGITS.fullmatch(v) for v in values):
            return Verdict(Tier.SEVERE, "BadContentLength"), lines
        if len(values) > 1:
            return Verdict(Tier.SEVERE, "MultipleContentLength"), lines
    if method in _BODYLESS and te:
        found.append(Verdict(Tier.AMBIGUOUS, "UndefinedTransferEncodingSemantics"))
    if te and cl:
        found.append(Verdict(Tier.AMBIGUOUS, "BothTeClPresent"))
        lines = [line for i, line in enumerate(lines) if i not in cl]
    elif len(cl) > 1:
        found.append(Verdict(Tier.AMBIGUOUS, "DuplicateContentLength"))
        lines = [line for i, line in enumerate(lines) if i not in cl[1:]]
    if method in _BODYLESS and cl and not te:
        zero = lines[cl[0]].split(b":", 1)[1].strip() == b"0"
        found.append(Verdict(Tier.ACCEPTABLE, "GetHeadZeroContentLength") if zero
                     else Verdict(Tier.AMBIGUOUS, "UndefinedContentLengthSemantics"))
    if not found:
        return COMPLIANT, lines
    return max(found, key=lambda v: v.tier), lines


_GET_TE: Final = Verdict(Tier.AMBIGUOUS, "UndefinedTransferEncodingSemantics")
_GET_CL: Final = Verdict(Tier.AMBIGUOUS, "UndefinedContentLengthSemantics")
_GET_CL0: Final = Verdict(Tier.ACCEPTABLE, "GetHeadZeroContentLength")


def classify_bodyless(te: str | None, cl: str | None) -> Verdict:
    """A GET or HEAD that llhttp parsed: a payload there "has no defined
    semantics" (RFC 9110 9.3.1), Ambiguous; `Content-Length: 0` is
    Acceptable."""
    if te is not None:
        return _GET_TE
    if cl is not None:
        return _GET_CL0 if cl == "0" else _GET_CL
    return COMPLIANT
