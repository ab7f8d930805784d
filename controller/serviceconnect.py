"""Service Connect's metrics (namespace AWS/ECS), as ECS publishes them from
its proxies, computed from shiftlab's namespace proxy (a listener and two
target groups per endpoint: see shiftlab/serviceconnect.py).

ECS's page (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html)
publishes two families, each with two dimension sets:
- what the proxies of the tasks that share a discovery name received
  (connections, bytes, requests), per DiscoveryName alone or per
  DiscoveryName, ServiceName, ClusterName (the server service);
- what those tasks' applications answered to other Service Connect tasks
  of the namespace (HTTP codes, response time, bytes, requests per
  target), per TargetDiscoveryName alone or per TargetDiscoveryName,
  ServiceName, ClusterName (only the traffic from that client service).

One proxy plays every sidecar here, so both families count the same
requests: an endpoint's blue and green target groups summed (a discovery
name covers both revisions), its listener's connections.

Pure: `query_key`, `unpublished`, `add_to_snapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

NAMESPACE = "AWS/ECS"
# The store's key of an endpoint's metrics (beside the target groups').
KEY_PREFIX = "servicediscovery:"

HTTP_CODES = ("HTTPCode_Target_2XX_Count", "HTTPCode_Target_3XX_Count", "HTTPCode_Target_4XX_Count",
              "HTTPCode_Target_5XX_Count")
# Per DiscoveryName (the page's "Valid dimensions: DiscoveryName and DiscoveryName, ServiceName, ClusterName").
INBOUND = ("ActiveConnectionCount", "NewConnectionCount", "ProcessedBytes", "RequestCount", "GrpcRequestCount",
           "ClientTLSNegotiationErrorCount")
# Per TargetDiscoveryName ("TargetDiscoveryName and TargetDiscoveryName, ServiceName, ClusterName").
OUTBOUND = (*HTTP_CODES, "RequestCountPerTarget", "TargetProcessedBytes", "TargetResponseTime",
            "TargetTLSNegotiationErrorCount")
METRICS = (*INBOUND, *OUTBOUND)
INBOUND_SETS = (frozenset({"DiscoveryName"}), frozenset({"DiscoveryName", "ServiceName", "ClusterName"}))
OUTBOUND_SETS = (frozenset({"TargetDiscoveryName"}), frozenset({"TargetDiscoveryName", "ServiceName", "ClusterName"}))
DIMENSIONS = frozenset().union(*INBOUND_SETS, *OUTBOUND_SETS)
# Counted here, never made: shiftlab's proxy speaks neither TLS nor gRPC to its targets.
ALWAYS_ZERO = ("GrpcRequestCount", "ClientTLSNegotiationErrorCount", "TargetTLSNegotiationErrorCount")
# The page's Unit column: Count unless named here.
UNITS = {name: "Count" for name in METRICS} | {"ProcessedBytes": "Bytes", "TargetProcessedBytes": "Bytes",
                                               "TargetResponseTime": "Milliseconds"}


def is_service_connect(namespace: str | None, name: str | None, dimension_names: Iterable[str]) -> bool:
    """Whether a metric is one of Service Connect's (rather than CPU or memory, also AWS/ECS)."""
    dims = set(dimension_names)
    return namespace == NAMESPACE and name in METRICS and bool(dims & {"DiscoveryName", "TargetDiscoveryName"})


def discovery_of(dimensions: Iterable[tuple[str, str]]) -> str | None:
    for name, value in dimensions:
        if name in ("DiscoveryName", "TargetDiscoveryName"):
            return value
    return None


def query_key(dimensions: Iterable[tuple[str, str]]) -> str:
    return KEY_PREFIX + (discovery_of(dimensions) or "")


def unpublished(name: str, dimension_names: Iterable[str]) -> str | None:
    """Why ECS never publishes Service Connect's `name` with these dimensions, or None."""
    dims = frozenset(dimension_names)
    if "DiscoveryName" in dims and "TargetDiscoveryName" in dims:
        return "ECS publishes Service Connect metrics with DiscoveryName or TargetDiscoveryName, never both"
    if "DiscoveryName" in dims:
        if name not in INBOUND:
            return (f"ECS publishes {name} per TargetDiscoveryName only, never per DiscoveryName "
                    f"(per DiscoveryName: {', '.join(INBOUND)})")
        if dims not in INBOUND_SETS:
            return (f"ECS publishes {name} per DiscoveryName alone or with exactly ServiceName and ClusterName "
                    "(the service's)")
        return None
    if name not in OUTBOUND:
        return (f"ECS publishes {name} per DiscoveryName only, never per TargetDiscoveryName "
                f"(per TargetDiscoveryName: {', '.join(OUTBOUND)})")
    if dims not in OUTBOUND_SETS:
        return (f"ECS publishes {name} per TargetDiscoveryName alone or with exactly ServiceName (the "
                "client's) and ClusterName")
    return None


def add_to_snapshot(snapshot: dict[str, Any], endpoints: Mapping[str, tuple[str, str, str]]) -> dict[str, Any]:
    """`snapshot` (the proxy's GET /admin/stats) with each endpoint's metrics
    under "serviceConnect": discovery name -> (listener, blue group, green
    group). The snapshot is changed in place and returned."""
    groups = snapshot.get("targetGroups", {})
    listeners = snapshot.get("listeners", {})
    out = snapshot.setdefault("serviceConnect", {})
    for discovery, (listener, blue, green) in endpoints.items():
        parts = [groups[g] for g in (blue, green) if g in groups]
        merged = _sum(parts)
        conns = listeners.get(listener, {})
        merged["ActiveConnectionCount"] = conns.get("ActiveConnectionCount", 0)
        merged["NewConnectionCount"] = conns.get("NewConnectionCount", 0)
        merged["TargetProcessedBytes"] = merged.get("ProcessedBytes", 0)
        for name in ALWAYS_ZERO:
            merged[name] = 0
        out[discovery] = merged
    return snapshot


def _sum(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "TargetResponseTime":
                out[key] = _sum_histograms(out.get(key), value)
            elif isinstance(value, int | float):
                out[key] = out.get(key, 0) + value
    return out


def _sum_histograms(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    if a is None:
        return {**b, "buckets": list(b.get("buckets", []))}
    mins = [v for v in (a.get("min"), b.get("min")) if v is not None]
    maxs = [v for v in (a.get("max"), b.get("max")) if v is not None]
    return {"count": a.get("count", 0) + b.get("count", 0), "sum": a.get("sum", 0.0) + b.get("sum", 0.0),
            "min": min(mins) if mins else None, "max": max(maxs) if maxs else None,
            "buckets": [x + y for x, y in zip(a.get("buckets", []), b.get("buckets", []), strict=False)]}
