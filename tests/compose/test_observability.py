"""The compose stack's `observability` profile: Prometheus's scrape config,
Grafana's provisioning and dashboard, and the compose services that run them.

No image is pulled. Debian's prometheus (tests marked `prometheus`; see
tests/compose/promserver.py) scrapes a real proxy (the compose stack's own
load balancer config, on 127.0.0.1, with real backends and traffic) with a
config derived from compose/prometheus/prometheus.yml and evaluates every
query of the dashboard; promtool checks the config and lints /metrics.
Without prometheus, the dashboard's PromQL is still read against what the
proxy exports on /metrics (tests/compose/promql.py), and the config files
are checked against each other and against compose/shiftlab.yaml."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shiftlab.common.netsafety import is_loopback
from shiftlab.loadgen import run_load
from tests.compose import promql, promserver
from tests.helpers import REPO, eventually, free_port
from tests.proxy.conftest import Backend, StartProxy, get_text

COMPOSE = REPO / "compose"
COMPOSE_FILE = COMPOSE / "docker-compose.yml"
PROMETHEUS_YML = COMPOSE / "prometheus" / "prometheus.yml"
DATASOURCES = COMPOSE / "grafana" / "provisioning" / "datasources"
DASHBOARD_PROVIDERS = COMPOSE / "grafana" / "provisioning" / "dashboards"
DASHBOARD = COMPOSE / "grafana" / "dashboards" / "shiftlab.json"
PROFILE = "observability"
OBSERVABILITY = ("prometheus", "grafana")

# PromQL functions and aggregations the dashboard may call (a misspelt one fails).
FUNCTIONS = {"sum", "avg", "max", "min", "count", "rate", "irate", "increase", "histogram_quantile",
             "clamp_min", "clamp_max", "label_values"}
# What Grafana substitutes for the dashboard's variables with "All" selected.
VARIABLES = {"load_balancer": ".*", "__rate_interval": "20s"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return data


def default_of(value: str) -> str:
    """`${VAR:-default}` -> default (compose's interpolation, for one variable)."""
    m = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", value)
    assert m, f"{value!r} is not ${{VARIABLE:-default}}"
    return m.group(2)


def compose_lb() -> dict[str, Any]:
    lb: dict[str, Any] = load_yaml(COMPOSE / "shiftlab.yaml")["loadBalancer"]
    return lb


def scrape_job() -> dict[str, Any]:
    jobs = load_yaml(PROMETHEUS_YML)["scrape_configs"]
    assert len(jobs) == 1, "one job: the shiftlab proxy"
    job: dict[str, Any] = jobs[0]
    return job


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(dash: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, expr, legendFormat) of every query of the dashboard."""
    return [(p["title"], t["expr"], t.get("legendFormat", "")) for p in panels(dash) for t in p.get("targets", [])]


def seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert m, duration
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


# -- (a) the dashboard's queries against a real proxy's /metrics ------------------


def loopback_lb(token: str, blue: list[str], green: list[str]) -> dict[str, Any]:
    """The compose stack's own load balancer (its listeners, groups and
    health checks), on 127.0.0.1 with free ports, the admin API with a token."""
    lb = compose_lb()
    for listener in lb["Listeners"]:
        listener.update(Address="127.0.0.1", Port=free_port())
    lb["Admin"] = {"Address": "127.0.0.1", "Port": 0, "Token": token}
    assert [g["Name"] for g in lb["TargetGroups"]] == ["blue", "green"]
    lb["TargetGroups"][0]["Targets"] = blue
    lb["TargetGroups"][1]["Targets"] = green
    return lb


def labelled(samples: dict[str, list[dict[str, str]]], name: str) -> list[dict[str, str]]:
    assert name in samples, f"{name} is not in the proxy's /metrics (it has: {', '.join(sorted(samples))})"
    return samples[name]


def check_query(title: str, expr: str, legend: str, samples: dict[str, list[dict[str, str]]]) -> list[str]:
    where = f"{title!r}: {expr}"
    q = promql.parse(expr)
    problems = [f"{where}: unknown function {f}" for f in sorted(q.functions - FUNCTIONS)]
    if not q.selectors:
        problems.append(f"{where}: selects no metric")
    for name, matchers in q.selectors:
        if name not in samples:
            problems.append(f"{where}: no {name} in /metrics")
            continue
        series = samples[name]
        for m in matchers:
            if not any(m.label in s for s in series):
                problems.append(f"{where}: {name} has no label {m.label}")
        if not any(all(m.matches(s, VARIABLES) for m in matchers) for s in series):
            problems.append(f"{where}: {name}{{{', '.join(f'{m.label}{m.op}{m.value!r}' for m in matchers)}}} "
                            "selects none of the proxy's series")
        for label in sorted(q.grouping | q.without):
            if not any(label in s for s in series):
                problems.append(f"{where}: grouped by {label}, which {name} does not have")
    legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    # A legend can only name what survives a `by` aggregation (or the series'
    # own labels: `without` here only ever aggregates a divisor).
    available = q.grouping if q.grouping else {k for name, _ in q.selectors for s in samples.get(name, []) for k in s}
    problems += [f"{where}: legend {{{{{label}}}}} names a label the result does not have"
                 for label in sorted(legend_labels - available)]
    return problems


async def test_every_dashboard_query_selects_what_the_proxy_exports(
        start_proxy: StartProxy, backends: Any, client: aiohttp.ClientSession) -> None:
    blue: Backend = await backends("blue-1")
    green: Backend = await backends("green-1")
    token = "scrape-token-0123456789"
    px = await start_proxy(loopback_lb(token, [blue.addr], [green.addr]),
                           time_scale=load_yaml(COMPOSE / "shiftlab.yaml")["timeScale"])
    auth = {"Authorization": f"Bearer {token}"}  # what `authorization: {type: Bearer}` sends
    admin = px.admin_url
    await eventually(lambda: px.lb.health_counts() == {"blue": (1, 0), "green": (1, 0)}, what="healthy targets")

    # A canary in progress: 20 % to green, a few target 5xx, and load
    # balancer 5xx (the test listener sent to a group with no target left).
    async with client.put(f"{admin}/admin/listeners/prod/rules/default/forward", headers=auth,
                          json={"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 80},
                                                 {"TargetGroupArn": "green", "Weight": 20}]}) as resp:
        assert resp.status == 200
    prod = px.listener_url("prod")
    for _ in range(20):
        assert (await get_text(client, prod))[0] == 200
    for _ in range(3):
        assert (await get_text(client, prod + "/status/500"))[0] == 500
    async with client.post(f"{admin}/admin/target-groups/green/deregister", headers=auth,
                           json={"Targets": [{"Id": green.addr}]}) as resp:
        assert resp.status == 200
    async with client.put(f"{admin}/admin/listeners/test/rules/default/forward", headers=auth,
                          json={"TargetGroups": [{"TargetGroupArn": "green", "Weight": 1}]}) as resp:
        assert resp.status == 200
    await eventually(lambda: px.lb.groups["green"].targets == {}, what="green drained")
    assert (await get_text(client, px.listener_url("test")))[0] == 503

    # Scraped the way prometheus.yml says: its metrics_path, its auth.
    job = scrape_job()
    url = f"{admin}{job['metrics_path']}"
    async with client.get(url) as resp:
        assert resp.status == 401, "the scrape needs the token: prometheus.yml must send it"
    async with client.get(url, headers=auth) as resp:
        assert resp.status == 200
        text = await resp.text()
    samples: dict[str, list[dict[str, str]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append(s.labels)

    dash = dashboard()
    found = queries(dash)
    assert len(found) >= 8
    problems = [p for title, expr, legend in found for p in check_query(title, expr, legend, samples)]
    for var in dash["templating"]["list"]:
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"])
        assert m, var["query"]
        if not any(m.group(2) in s for s in labelled(samples, m.group(1))):
            problems.append(f"variable {var['name']}: {m.group(1)} has no label {m.group(2)}")
    assert problems == []

    # What the issue asks the dashboard to show is there.
    used = {name for _, expr, _ in found for name in promql.parse(expr).metrics}
    assert used >= {"shiftlab_request_count_total", "shiftlab_httpcode_target_count_total",
                    "shiftlab_httpcode_elb_count_total", "shiftlab_target_response_time_seconds_bucket",
                    "shiftlab_healthy_host_count", "shiftlab_unhealthy_host_count",
                    "shiftlab_target_group_weight"}
    quantiles = {m.group(1) for _, expr, _ in found for m in re.finditer(r"histogram_quantile\(([\d.]+)", expr)}
    assert quantiles == {"0.99", "0.5"}
    weights = {(s["listener"], s["rule"], s["target_group"]): s for s in samples["shiftlab_target_group_weight"]}
    assert ("prod", "default", "green") in weights


def test_the_promql_reader_sees_what_is_wrong() -> None:
    """The checks above fail on the mistakes they are there for."""
    samples = {"shiftlab_request_count_total": [{"listener": "prod", "target_group": "blue"}],
               "shiftlab_x_bucket": [{"target_group": "blue", "le": "0.1"}]}

    def problems(expr: str, legend: str = "") -> list[str]:
        return check_query("t", expr, legend, samples)

    assert problems('sum by (target_group) (rate(shiftlab_request_count_total{target_group!=""}[$__rate_interval]))',
                    "{{target_group}}") == []
    assert problems("histogram_quantile(0.99, sum by (le) (rate(shiftlab_x_bucket[5m])))") == []
    assert problems("shiftlab_request_count_total") == []
    assert problems("rate(shiftlab_request_count[1m])")  # no _total
    assert problems("rate(shiftlab_x[1m])")  # a histogram without its _bucket
    assert problems('shiftlab_request_count_total{code_class="5XX"}')  # no such label
    assert problems('shiftlab_request_count_total{target_group="green"}')  # selects nothing
    assert problems('shiftlab_request_count_total{target_group=~"gr.*"}')
    assert problems("sum by (code) (shiftlab_request_count_total)")
    assert problems("sum by (listener) (shiftlab_request_count_total)", "{{target_group}}")
    assert problems("rates(shiftlab_request_count_total[1m])")


# -- (b) prometheus.yml ------------------------------------------------------------


def test_prometheus_scrapes_the_admin_port_of_the_shiftlab_service() -> None:
    conf = load_yaml(PROMETHEUS_YML)
    assert seconds(conf["global"]["scrape_interval"]) <= 5, "a rehearsal's minute is a second: scrape often"
    job = scrape_job()
    interval = seconds(job.get("scrape_interval", conf["global"]["scrape_interval"]))
    timeout = seconds(job.get("scrape_timeout", conf["global"].get("scrape_timeout", "10s")))
    assert timeout <= interval, "Prometheus refuses a timeout longer than the interval"
    assert job["metrics_path"] == "/metrics" and job.get("scheme", "http") == "http"
    (static,) = job["static_configs"]
    (target,) = static["targets"]
    host, port = target.rsplit(":", 1)

    services = compose()["services"]
    assert host in services and "shiftlab.yaml" in " ".join(services[host]["command"]), \
        f"{host} is not the compose service that runs shiftlab"
    admin = compose_lb()["Admin"]
    assert int(port) == admin["Port"]
    # Prometheus is another container: the admin API must listen beyond the
    # container's loopback, and so it needs the token (shiftlab refuses otherwise).
    assert not is_loopback(admin["Address"])
    assert "Token" not in admin, "the token comes from SHIFTLAB_TOKEN, not from the file"
    published = [p for p in services[host].get("ports", []) if str(p).rsplit(":", 1)[-1] == str(admin["Port"])]
    assert published == [], "the admin API is for the stack's network only, never published on the host"


def test_prometheus_sends_the_stack_token() -> None:
    services = compose()["services"]
    prom = services["prometheus"]
    auth = scrape_job()["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    token_file = auth["credentials_file"]
    entry = prom["entrypoint"]
    assert entry[:2] == ["/bin/sh", "-c"]
    assert f"> {token_file} " in entry[2], "the entrypoint writes the file prometheus.yml reads"
    assert prom["environment"]["SHIFTLAB_TOKEN"] == services["shiftlab"]["environment"]["SHIFTLAB_TOKEN"]
    assert any(token_file.startswith(t.rstrip("/") + "/") for t in prom["tmpfs"]), "the token stays in memory"
    config_flag = next(a for a in prom["command"] if a.startswith("--config.file="))
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
    assert (COMPOSE / mounts[config_flag.split("=", 1)[1]]).resolve() == PROMETHEUS_YML


def test_the_prometheus_entrypoint_writes_the_token_and_starts_prometheus(tmp_path: Path) -> None:
    """Run the entrypoint's shell script (compose's `$$` is `$`), with the
    token file and the prometheus binary moved to places a test may use."""
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    prom = compose()["services"]["prometheus"]
    token_file = scrape_job()["authorization"]["credentials_file"]
    fake = tmp_path / "prometheus"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "arg:$a"; done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    script = (prom["entrypoint"][2].replace("$$", "$").replace(token_file, str(tmp_path / "token"))
              .replace("/bin/prometheus", str(fake)))
    token = "tok with 'quotes' and $dollars"
    out = subprocess.run([sh, "-c", script, *prom["entrypoint"][3:], *prom["command"]], capture_output=True,
                         text=True, env={**os.environ, "SHIFTLAB_TOKEN": token}, timeout=30, check=True)
    assert (tmp_path / "token").read_text() == token
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600
    assert out.stdout.splitlines() == [f"arg:{a}" for a in prom["command"]]


# -- (c) docker-compose.yml ------------------------------------------------------


def test_prometheus_and_grafana_are_only_in_the_observability_profile() -> None:
    services = compose()["services"]
    for name in OBSERVABILITY:
        assert services[name]["profiles"] == [PROFILE]
    for name, svc in services.items():
        if name not in OBSERVABILITY:
            assert "profiles" not in svc, f"{name} must start with a plain `up`"
            for dep in svc.get("depends_on", []):
                assert dep not in OBSERVABILITY


def test_every_published_port_is_on_loopback() -> None:
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_the_images_are_variables_with_pinned_defaults() -> None:
    services = compose()["services"]
    for name, repo in (("prometheus", "prom/prometheus"), ("grafana", "grafana/grafana")):
        image = default_of(services[name]["image"])
        assert image.startswith(repo + ":")
        tag = image.split(":", 1)[1]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{image}: pin a version"


def test_the_mounted_files_exist() -> None:
    for name in OBSERVABILITY:
        for volume in compose()["services"][name].get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") and (COMPOSE / source).exists(), volume


def compose_config(profile: list[str], token: str | None) -> subprocess.CompletedProcess[str]:
    """`config` needs neither an engine nor a registry (skipped without the CLI)."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                   timeout=30).returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.skip("neither docker-compose nor docker compose")
    env = {k: v for k, v in os.environ.items() if k != "SHIFTLAB_TOKEN"}
    if token is not None:
        env["SHIFTLAB_TOKEN"] = token
    return subprocess.run([*command, "-f", str(COMPOSE_FILE), *profile, "config"], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.mark.parametrize("profile", [[], ["--profile", PROFILE]])
def test_compose_accepts_the_file(profile: list[str]) -> None:
    token = secrets.token_urlsafe(24)
    out = compose_config(profile, token)
    assert out.returncode == 0, out.stderr
    rendered = yaml.safe_load(out.stdout)["services"]
    assert "shiftlab" in rendered
    assert rendered["shiftlab"]["environment"]["SHIFTLAB_TOKEN"] == token
    if profile:
        assert set(OBSERVABILITY) <= set(rendered)
        assert rendered["prometheus"]["environment"]["SHIFTLAB_TOKEN"] == token


@pytest.mark.parametrize("profile", [[], ["--profile", PROFILE]])
def test_the_stack_has_no_default_token(profile: list[str]) -> None:
    """A default everyone knows protects nothing: without SHIFTLAB_TOKEN
    compose refuses the stack, saying how to make a token."""
    out = compose_config(profile, None)
    assert out.returncode != 0, out.stdout
    assert "set SHIFTLAB_TOKEN to a token of your own" in out.stderr, out.stderr
    assert "secrets.token_urlsafe(24)" in out.stderr


# -- (d) Grafana's provisioning ---------------------------------------------------


def test_the_datasource_is_the_prometheus_service() -> None:
    (path,) = DATASOURCES.glob("*.y*ml")
    (ds,) = load_yaml(path)["datasources"]
    assert ds["type"] == "prometheus" and ds["access"] == "proxy"
    url = urlsplit(ds["url"])
    services = compose()["services"]
    assert url.hostname in services and url.hostname == "prometheus"
    listen = next(a for a in services["prometheus"]["command"] if a.startswith("--web.listen-address="))
    assert url.port == int(listen.rsplit(":", 1)[1])
    assert seconds(ds["jsonData"]["timeInterval"]) == seconds(load_yaml(PROMETHEUS_YML)["global"]["scrape_interval"])
    # Every panel, query and variable of the dashboard uses this datasource.
    dash = dashboard()
    refs = [p["datasource"] for p in panels(dash) if "datasource" in p]
    refs += [t["datasource"] for p in panels(dash) for t in p.get("targets", [])]
    refs += [v["datasource"] for v in dash["templating"]["list"]]
    assert refs and all(r == {"type": "prometheus", "uid": ds["uid"]} for r in refs)


def test_the_dashboard_provider_loads_the_dashboard() -> None:
    (path,) = DASHBOARD_PROVIDERS.glob("*.y*ml")
    (provider,) = load_yaml(path)["providers"]
    assert provider["type"] == "file"
    grafana = compose()["services"]["grafana"]
    mounts = {target: (COMPOSE / source).resolve()
              for source, target, *_ in (v.split(":") for v in grafana["volumes"])}
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent
    assert mounts["/etc/grafana/provisioning"] == DATASOURCES.parent
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert mounts[str(home.parent)] / home.name == DASHBOARD


def test_grafana_lets_anonymous_viewers_in() -> None:
    env = compose()["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer", "viewers, not editors"


def test_the_dashboard_is_well_formed() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and dash["refresh"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    for p in panels(dash):
        for t in p.get("targets", []):
            assert t["refId"] and t["expr"].strip()
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24


# -- (e) Debian's promtool and prometheus on the real files -------------------------


@pytest.mark.prometheus
def test_promtool_accepts_the_compose_config() -> None:
    """The file as the container reads it. --syntax-only: its credentials
    file exists only in the container (the full check, which reads it, runs
    on the derived config in the test below)."""
    _, promtool = promserver.binaries()
    out = subprocess.run([promtool, "check", "config", "--syntax-only", str(PROMETHEUS_YML)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def drops_requests(log: list[bytes]) -> Any:
    """A raw target that passes its health checks and hangs up on every
    other request unanswered: the load balancer answers those with its own 502."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        log.append(head.split(b"\r\n", 1)[0])
        if head.startswith(b"GET /health "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()
    return handle


# What each dashboard query must return once Prometheus has a few scrapes of
# the traffic below, by (panel title, refId): the labels that tell its series
# apart, and the series expected with a check of each value. Every query of
# the dashboard must be here (a new panel needs its expectation).
Check = tuple[tuple[str, ...], dict[tuple[str, ...], Callable[[float], bool]]]


def positive(v: float) -> bool:
    return v > 0 and math.isfinite(v)


def zero(v: float) -> bool:
    return v == 0


def finite(v: float) -> bool:
    return math.isfinite(v)


def equals(n: float) -> Callable[[float], bool]:
    return lambda v: v == n


EXPECTED: dict[tuple[str, str], Check] = {
    # Gauges: every rule's forward weights, whatever the traffic. Only the
    # canary's rule is pinned here; the other rules' series must be there too.
    ("Traffic share in force (%)", "A"): (("listener", "rule", "target_group"), {
        ("prod", "default", "blue"): equals(80), ("prod", "default", "green"): equals(20)}),
    # The canary load reaches both groups all along (80/20 of ~100 rps).
    ("Requests per target group", "A"): (("target_group",), {("blue",): positive, ("green",): positive}),
    # /status/500 at ~10 rps is answered by both groups' real targets.
    ("Target 5XX per target group", "A"): (("target_group",), {("blue",): positive, ("green",): positive}),
    ("Target 5XX ratio", "A"): (("target_group",), {("blue",): positive, ("green",): positive}),
    # blue's second target hangs up: the load balancer's 502s on prod.
    ("ELB 5XX and connection errors", "A"): (("listener", "code"), {("prod", "502"): positive}),
    # Exported (as 0) for every listener and group that saw a request: no
    # connection is refused here, so the series are there and flat.
    ("ELB 5XX and connection errors", "B"): (("target_group",), {("blue",): zero, ("green",): zero}),
    # Both groups' real targets answer all along: quantiles of real observations.
    ("TargetResponseTime p50 / p99", "A"): (("target_group",), {("blue",): positive, ("green",): positive}),
    ("TargetResponseTime p50 / p99", "B"): (("target_group",), {("blue",): positive, ("green",): positive}),
    # Gauges: blue's two targets (one answering, one hanging up) pass their
    # health checks, green's one does.
    ("Healthy / unhealthy hosts", "A"): (("target_group",), {("blue",): equals(2), ("green",): equals(1)}),
    ("Healthy / unhealthy hosts", "B"): (("target_group",), {("blue",): zero, ("green",): zero}),
}
ALWAYS_ALL = {("Traffic share in force (%)", "A")}  # the series beyond the pinned ones


# promtool check metrics's findings on the proxy's /metrics, known and left
# as they are for now: gauges named after CloudWatch's HealthyHostCount,
# UnHealthyHostCount and ActiveConnectionCount keep a `_count` suffix, which
# Prometheus's conventions keep for histograms and summaries. Any other
# finding fails, and so does fixing these (update this set then).
KNOWN_LINT = {f'shiftlab_{name}_count non-histogram and non-summary metrics should not have "_count" suffix'
              for name in ("active_connection", "healthy_host", "unhealthy_host")}


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's interpolation of `$name` (longest names first)."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(f"${name}", variables[name])
    assert "$" not in expr, f"a variable the test does not know: {expr}"
    return expr


def judge(key: tuple[str, str], result: list[dict[str, Any]]) -> list[str]:
    labels, expected = EXPECTED[key]
    got: dict[tuple[str, ...], float] = {}
    for series in result:
        metric = series["metric"]
        missing = [label for label in labels if label not in metric]
        if missing:
            return [f"{key}: a series without {missing}: {metric}"]
        got[tuple(metric[label] for label in labels)] = float(series["value"][1])
    problems = []
    if not got:
        problems.append(f"{key}: no series")
    for ident, ok in expected.items():
        if ident not in got:
            problems.append(f"{key}: no series {dict(zip(labels, ident, strict=True))} (got {sorted(got)})")
        elif not ok(got[ident]):
            problems.append(f"{key}: {dict(zip(labels, ident, strict=True))} = {got[ident]}")
    extra = set(got) - set(expected)
    if extra and key not in ALWAYS_ALL:
        problems.append(f"{key}: series the traffic cannot explain: {sorted(extra)}")
    return problems


@pytest.mark.prometheus
async def test_prometheus_scrapes_the_proxy_and_evaluates_every_dashboard_query(
        start_proxy: StartProxy, backends: Any, raw_server: Any, client: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    """Debian's prometheus, configured by compose/prometheus/prometheus.yml
    (only its target, credentials file and scrape interval changed), scrapes
    a real proxy (the compose load balancer on 127.0.0.1) under a canary's
    traffic; every query of every panel, with its variables substituted as
    Grafana does, must then succeed and return the series the traffic makes
    certain."""
    prometheus, promtool = promserver.binaries()
    blue: Backend = await backends("blue-1")
    green: Backend = await backends("green-1")
    dropped: list[bytes] = []
    bad = f"127.0.0.1:{await raw_server(drops_requests(dropped))}"
    token = "scrape-token-0123456789"
    px = await start_proxy(loopback_lb(token, [blue.addr, bad], [green.addr]),
                           time_scale=load_yaml(COMPOSE / "shiftlab.yaml")["timeScale"])
    admin, auth = px.admin_url, {"Authorization": f"Bearer {token}"}
    await eventually(lambda: px.lb.health_counts() == {"blue": (2, 0), "green": (1, 0)}, what="healthy targets")
    # Weights 4/1: the dashboard shows the share, 80/20 (the controller writes
    # out of 100 or 1000, and 1/0 at the ends).
    async with client.put(f"{admin}/admin/listeners/prod/rules/default/forward", headers=auth,
                          json={"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 4},
                                                 {"TargetGroupArn": "green", "Weight": 1}]}) as resp:
        assert resp.status == 200

    # Prometheus's config: the compose file's, pointed at this proxy.
    scrape_s = 1.0
    token_file = tmp_path / "shiftlab-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(promserver.derived_config(
        load_yaml(PROMETHEUS_YML), f"127.0.0.1:{px.admin_port}", token_file, f"{scrape_s:g}s")))
    out = await promserver.promtool(promtool, "check", "config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr

    # A canary's traffic (bounded: it stops with the test, or after a minute).
    prod = px.listener_url("prod")
    stop = asyncio.Event()
    loads = [asyncio.ensure_future(run_load(url, rps, 60, stop=stop, concurrency=4))
             for url, rps in ((prod, 100), (prod + "/status/500", 10))]
    try:
        async with promserver.run_prometheus(prometheus, config, tmp_path, client) as prom:
            job = scrape_job()

            async def target_up() -> dict[str, Any] | None:
                active = (await prom.api(client, "targets"))["activeTargets"]
                if not active:
                    return None  # discovery is not through yet
                (target,) = active
                assert target["health"] != "down", target["lastError"]
                return target if target["health"] == "up" else None

            target = await prom.wait("the proxy's target to be up", target_up)
            assert target["scrapeUrl"] == f"http://127.0.0.1:{px.admin_port}{job['metrics_path']}"
            assert target["labels"]["job"] == job["job_name"]
            assert {k: target["labels"][k] for k in job["static_configs"][0]["labels"]} \
                == job["static_configs"][0]["labels"]

            # The variable's values, as Grafana asks for label_values(metric, label).
            dash = dashboard()
            (var,) = dash["templating"]["list"]
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"])
            assert m, var["query"]
            values = await prom.api(client, f"label/{m.group(2)}/values", **{"match[]": m.group(1)})
            assert values == [compose_lb()["Name"]]
            # Grafana: $__interval is the dashboard's range over the panel's
            # points (15 min over ~1000: 1 s, never below the scrape interval).
            interval = max(scrape_s, seconds("15m") / 1000)
            choices = {"All": var["allValue"], values[0]: promserver.grafana_regex_escape(values[0])}
            targets = [(p["title"], t["refId"], t["expr"]) for p in panels(dash) for t in p.get("targets", [])]
            assert {(title, ref) for title, ref, _ in targets} == set(EXPECTED), "every query has its expectation"

            last: dict[tuple[str, str, str], list[dict[str, Any]]] = {}

            async def evaluate() -> list[str]:
                problems = []
                for choice, value in choices.items():
                    variables = {var["name"]: value, "__rate_interval": promserver.rate_interval(scrape_s, interval)}
                    for title, ref, expr in targets:
                        data = await prom.api(client, "query", query=substitute(expr, variables))
                        assert data["resultType"] == "vector", data
                        last[(title, ref, choice)] = data["result"]
                        problems += [f"[{choice}] {p}" for p in judge((title, ref), data["result"])]
                return problems

            async def settled() -> bool:
                return not await evaluate()

            try:
                await prom.wait("every query's expected series", settled, timeout=30)
            except AssertionError:
                problems = await evaluate()
                assert not problems, "\n".join(problems)
            for (title, ref, choice), result in last.items():
                print(f"{title} {ref} [{choice}]: {len(result)} series "
                      + ", ".join(f"{dict((k, v) for k, v in s['metric'].items() if k in EXPECTED[(title, ref)][0])}"
                                  f"={float(s['value'][1]):.3g}" for s in result))

            # The raw series carry the compose job's labels.
            (series, *_) = last[("Traffic share in force (%)", "A", "All")]
            assert series["metric"]["job"] == job["job_name"] and series["metric"]["stack"] == "shiftlab-compose"

            # promtool's lint of the very text Prometheus scrapes.
            async with client.get(f"{admin}{job['metrics_path']}", headers=auth) as resp:
                assert resp.status == 200
                text = await resp.text()
            lint = await promserver.promtool(promtool, "check", "metrics", stdin=text)
            findings = set((lint.stdout + lint.stderr).splitlines()) - {""}
            assert lint.returncode in (0, 3), lint.stdout + lint.stderr  # 3: lint findings
            assert findings == KNOWN_LINT, "promtool check metrics (new findings, or known ones fixed):\n" \
                + "\n".join(sorted(findings ^ KNOWN_LINT))
    finally:
        stop.set()
        results = await asyncio.gather(*loads)
    assert any(line.startswith(b"GET / ") for line in dropped), "the hanging-up target was sent requests"
    assert all(r.statuses for r in results)
