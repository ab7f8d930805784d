"""The application's Prometheus metrics, scraped as Container Insights'
Prometheus monitoring does on ECS: the config takes the CloudWatch agent's
shape, metric types convert as the agent converts them, a declaration's
source_labels/label_matcher/metric_selectors/dimensions choose what becomes
which CloudWatch metric, and bad answers are rejected whole.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/ContainerInsights-Prometheus-metrics-conversion.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/ContainerInsights-Prometheus-Setup-autodiscovery-ecs.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/ContainerInsights-Prometheus-Setup-configure-ECS.html
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from shiftlab.common.configfile import ConfigError, parse
from shiftlab.controller.metricstore import CustomMetrics, custom_stat, metric_key
from shiftlab.controller.promscrape import (
    DEFAULT_NAMESPACE,
    Converter,
    PrometheusConfig,
    Scraper,
    Target,
    samples,
    targets,
)
from shiftlab.settings import load_settings
from tests.controller.support import config

DECLARATION = {"source_labels": ["job"], "label_matcher": "^payments$",
               "dimensions": [["ClusterName", "TaskDefinitionFamily"]],
               "metric_selectors": ["^payments_transactions_failed_total$", "^queue_depth$", "^rpc_seconds"]}
CONFIG = PrometheusConfig.model_validate({
    "ecs_service_discovery": {"task_definition_list": [{
        "sd_job_name": "payments", "sd_metrics_ports": "8080",
        "sd_task_definition_arn_pattern": ".*:task-definition/web:.*"}]},
    "emf_processor": {"metric_declaration": [DECLARATION]},
})
LABELS = {"job": "payments", "ClusterName": "local", "TaskDefinitionFamily": "web", "TaskRevision": "2"}
TARGET = Target("t1", "http://127.0.0.1:1/metrics", LABELS)
KEY = metric_key(DEFAULT_NAMESPACE, "payments_transactions_failed_total",
                 [("ClusterName", "local"), ("TaskDefinitionFamily", "web")])

EXPOSITION = """# TYPE payments_transactions_failed_total counter
payments_transactions_failed_total {failed}
# TYPE queue_depth gauge
queue_depth {depth}
# TYPE rpc_seconds summary
rpc_seconds{{quantile="0.5"}} 0.2
rpc_seconds_sum {rpc_sum}
rpc_seconds_count {rpc_count}
# TYPE latency_seconds histogram
latency_seconds_bucket{{le="1.0"}} 3
latency_seconds_bucket{{le="+Inf"}} 4
latency_seconds_sum 2.0
latency_seconds_count 4
"""


def exposition(failed: float = 0, depth: float = 0, rpc_sum: float = 0, rpc_count: float = 0) -> str:
    return EXPOSITION.format(failed=failed, depth=depth, rpc_sum=rpc_sum, rpc_count=rpc_count)


def converted(*texts: str) -> list[dict[str, float]]:
    """Each scrape's datapoints, by metric name."""
    conv = Converter(CONFIG)
    out = []
    for i, text in enumerate(texts):
        out.append({key[1]: entry.total for key, entry in conv.convert(TARGET, samples(text), float(i))})
    return out


def test_counter_is_the_delta_from_the_previous_scrape_so_the_first_scrape_sends_none() -> None:
    """"The CloudWatch agent calculates a delta from the previous scrape and
    sends the delta value ... So the CloudWatch agent will start to produce one
    log event from the second scrape"."""
    first, second, third = converted(exposition(failed=5), exposition(failed=8), exposition(failed=8))
    assert "payments_transactions_failed_total" not in first
    assert second["payments_transactions_failed_total"] == 3
    assert third["payments_transactions_failed_total"] == 0


def test_a_counter_reset_counts_from_zero() -> None:
    _, after_reset = converted(exposition(failed=50), exposition(failed=4))
    assert after_reset["payments_transactions_failed_total"] == 4


@pytest.mark.parametrize("name, first, second", [
    # "The CloudWatch agent scrapes gauge metrics and send these values out directly."
    ("queue_depth", 7.0, 9.0),
    # A summary's sum and count are handled as counters; "The CloudWatch agent keeps the quantile values as
    # originally reported."
    ("rpc_seconds_sum", None, 1.5),
    ("rpc_seconds_count", None, 3.0),
    ("rpc_seconds", 0.2, 0.2),
    # "The Prometheus metrics with the unsupported histogram metric type are dropped".
    ("latency_seconds_bucket", None, None),
    ("latency_seconds_sum", None, None),
    ("latency_seconds_count", None, None),
])
def test_metric_types_convert_as_the_agent_converts_them(name: str, first: float | None,
                                                         second: float | None) -> None:
    a, b = converted(exposition(depth=7, rpc_sum=1.0, rpc_count=2), exposition(depth=9, rpc_sum=2.5, rpc_count=5))
    assert a.get(name) == first
    assert b.get(name) == second


def test_declarations_choose_samples_by_source_labels_and_selectors_and_make_dimensions() -> None:
    conv = Converter(CONFIG)
    text = "# TYPE queue_depth gauge\nqueue_depth 3\n# TYPE other gauge\nother 1\n"
    [(key, _)] = conv.convert(TARGET, samples(text), 0.0)
    assert key == metric_key(DEFAULT_NAMESPACE, "queue_depth", [("ClusterName", "local"),
                                                               ("TaskDefinitionFamily", "web")])
    # Another job's target: label_matcher does not match its source_labels.
    assert conv.convert(Target("t2", "u2", {**LABELS, "job": "other"}), samples(text), 0.0) == []
    # A dimension set whose labels the sample lacks makes no metric.
    assert conv.convert(Target("t3", "u3", {"job": "payments"}), samples(text), 0.0) == []


def test_label_separator_joins_several_source_labels() -> None:
    cfg = PrometheusConfig.model_validate({"emf_processor": {"metric_declaration": [
        {"source_labels": ["job", "TaskRevision"], "label_separator": "|", "label_matcher": "^payments\\|2$",
         "dimensions": [["TaskRevision"]], "metric_selectors": ["^queue_depth$"]}]}})
    [(key, _)] = Converter(cfg).convert(TARGET, samples("queue_depth 1\n"), 0.0)
    assert key == metric_key(DEFAULT_NAMESPACE, "queue_depth", [("TaskRevision", "2")])


def test_the_tasks_to_scrape_and_their_labels_as_ecs_service_discovery_gives_them() -> None:
    @dataclass
    class T:
        task_id: str
        revision: str
        host: str = "127.0.0.1"
        port: int = 9000

    [t] = targets(CONFIG, [T("abc", "2")], "local", "web", "web")
    assert t.url == "http://127.0.0.1:9000/metrics"
    assert {k: t.labels[k] for k in ("job", "ClusterName", "TaskDefinitionFamily", "TaskRevision", "TaskGroup")} \
        == {"job": "payments", "ClusterName": "local", "TaskDefinitionFamily": "web", "TaskRevision": "2",
            "TaskGroup": "service:web"}
    assert targets(CONFIG, [T("abc", "2")], "local", "web", "other-family") == []


@pytest.mark.parametrize("section, path", [
    ({"emf_processor": {"metric_declaration": [{**DECLARATION, "label_matcher": "("}]}},
     "prometheus.emf_processor.metric_declaration[0].label_matcher"),
    ({"emf_processor": {"metric_declaration": [{**DECLARATION, "metric_selectors": []}]}},
     "prometheus.emf_processor.metric_declaration[0].metric_selectors"),
    ({"emf_processor": {"metric_unit": {"queue_depth": "Items"}}}, "prometheus.emf_processor.metric_unit"),
    ({"emf_processor": {"metric_namespace": ":x"}}, "prometheus.emf_processor.metric_namespace"),
    ({"scrape_interval": "often"}, "prometheus.scrape_interval"),
    ({"ecs_service_discovery": {"task_definition_list": [{"sd_job_nme": "x"}]}},
     "prometheus.ecs_service_discovery.task_definition_list[0].sd_job_nme"),
])
def test_bad_config_names_the_field(section: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(PrometheusConfig, section, "prometheus")
    assert any(p.startswith(path) for p in err.value.problems), err.value.problems


def test_validate_counts_a_metric_declaration_as_a_feeder(tmp_path: Any) -> None:
    alarm = {"AlarmName": "failed-payments", "Namespace": DEFAULT_NAMESPACE,
             "MetricName": "payments_transactions_failed_total", "Statistic": "Sum", "Period": 60,
             "EvaluationPeriods": 1, "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
             "Dimensions": [{"Name": "ClusterName", "Value": "local"},
                            {"Name": "TaskDefinitionFamily", "Value": "web"}]}
    data = config(tmp_path, {"strategy": "CANARY", "alarms": {"alarmNames": ["failed-payments"], "enable": True,
                                                              "rollback": True}}, alarms=[alarm])
    assert any("failed-payments" in w for w in load_settings(data).warnings())
    data["prometheus"] = {"emf_processor": {"metric_declaration": [DECLARATION]}}
    assert not any("failed-payments" in w for w in load_settings(data).warnings())


# -- scraping real endpoints ---------------------------------------------------------------------------------------

Handler = Callable[[web.Request], Any]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Any]]:
    runners: list[web.AppRunner] = []

    async def run(handler: Handler) -> Target:
        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return Target(f"t{port}", f"http://127.0.0.1:{port}/metrics", LABELS)

    yield run
    for r in runners:
        await r.cleanup()


def scraper(clock: list[float]) -> tuple[Scraper, CustomMetrics]:
    custom = CustomMetrics(3600.0)
    cfg = CONFIG.model_copy(update={"scrape_timeout": "1s"})
    return Scraper(cfg, custom, 1.0, lambda: clock[0]), custom


async def test_a_good_target_is_scraped_into_the_store(serve: Callable[[Handler], Any]) -> None:
    count = [0]

    async def good(_: web.Request) -> web.Response:
        count[0] += 4
        return web.Response(text=exposition(failed=count[0], depth=2))

    target = await serve(good)
    clock = [0.0]
    s, custom = scraper(clock)
    try:
        for at in (0.0, 60.0):
            clock[0] = at
            s.tick(at, [target])
            await s.wait()
    finally:
        await s.close()
    assert s.rejected == 0
    assert custom_stat(custom.entries(KEY), "Sum") == 4.0  # the delta between the two scrapes


async def _slow(_: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="queue_depth 1\n")


async def _huge(_: web.Request) -> web.StreamResponse:
    return web.Response(body=b"queue_depth 1\n" * (800 * 1024))


@pytest.mark.parametrize("handler, why", [
    (lambda _: web.Response(text="<html>not metrics</html>"), "text format"),
    (lambda _: web.Response(text="queue_depth one\n"), "text format"),
    (lambda _: web.Response(text="# TYPE queue_depth gauge\nqueue_depth{a=\"1\" 1\n"), "text format"),
    (lambda _: web.Response(body=b"queue_depth \xff\xfe 1\n"), "UTF-8"),
    (lambda _: web.Response(status=500, text="queue_depth 1\n"), "HTTP 500"),
    (_slow, "TimeoutError"),
    (_huge, "over"),
])
async def test_garbage_answers_are_rejected_counted_and_store_nothing(
        serve: Callable[[Handler], Any], handler: Any, why: str, caplog: pytest.LogCaptureFixture) -> None:
    async def h(request: web.Request) -> Any:
        result = handler(request)
        return (await result) if asyncio.iscoroutine(result) else result

    target = await serve(h)
    clock = [0.0]
    s, custom = scraper(clock)
    try:
        s.tick(0.0, [target])
        await s.wait()
    finally:
        await s.close()
    assert (s.scrapes, s.rejected, s.stored) == (1, 1, 0)
    assert len(custom) == 0
    assert why in caplog.text


async def test_a_round_never_waits_for_the_last_one_it_counts_an_overrun(serve: Callable[[Handler], Any]) -> None:
    target = await serve(_slow)
    clock = [0.0]
    s, _ = scraper(clock)
    try:
        s.tick(0.0, [target])
        s.tick(60.0, [target])  # returns at once; the first round still runs
        assert s.overrun == 1
    finally:
        await s.close()


def test_parsing_only_the_selected_families_and_reusing_unchanged_ones_gives_the_same_samples() -> None:
    selectors = [re.compile(s) for s in DECLARATION["metric_selectors"]]
    parsed: dict[str, Any] = {}
    text = exposition(failed=3, depth=2, rpc_sum=1.0, rpc_count=4) + "untyped_thing 4\nqueue_depth_max 9\n"
    full = [s for s in samples(text) if any(sel.search(s.name) for sel in selectors)]
    assert samples(text, selectors, parsed) == full
    assert samples(text, selectors, parsed) == full  # from the pieces parsed the first time
    assert parsed


@pytest.mark.parametrize("interval, timeout, scale, expected", [
    ("1m", "10s", 1.0, 10.0),      # unscaled: the config's
    ("1m", "10s", 60.0, 0.5),      # 0.17 s scaled: half a second of real time at least
    ("1m", "10s", 600.0, 0.1),     # but never longer than the (scaled) interval
    ("1m", "50s", 10.0, 5.0),
])
def test_the_scrape_timeout_is_scaled_with_a_floor(interval: str, timeout: str, scale: float,
                                                   expected: float) -> None:
    cfg = CONFIG.model_copy(update={"scrape_interval": interval, "scrape_timeout": timeout})
    assert Scraper(cfg, CustomMetrics(60.0), scale, lambda: 0.0).timeout == pytest.approx(expected)
