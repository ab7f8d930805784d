"""The pytest plugin, used the way a project would: a test file of its own,
run by pytest in a subprocess, with a config like the README's example."""

from __future__ import annotations

import importlib.metadata
from importlib import resources

import pytest

pytest_plugins = ["pytester"]


def test_the_plugin_is_registered() -> None:
    eps = importlib.metadata.entry_points(group="pytest11")
    assert any(ep.name == "shiftlab" and ep.value == "shiftlab.pytest_plugin" for ep in eps)


def test_a_project_rehearses_a_good_and_a_bad_release(pytester: pytest.Pytester) -> None:
    config = resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text()
    pytester.makefile(".yaml", shiftlab=config)
    pytester.makepyfile(test_release='''
        def test_good_release_survives_the_canary(shiftlab_rehearse):
            # cpu/memory are accepted (only the docker backend applies them).
            outcome = shiftlab_rehearse("shiftlab.yaml", env={"GREETING": "v2"}, cpu=256, memory="0.5 GB",
                                        load_rps=30)
            assert outcome.ok, outcome.reason
            assert outcome.load["connectionErrors"] == 0

        def test_bad_release_is_rolled_back(shiftlab_rehearse):
            outcome = shiftlab_rehearse("shiftlab.yaml", env={"ERROR_RATE": "0.5"}, load_rps=30)
            assert outcome.status == "ROLLBACK_SUCCESSFUL"
            assert outcome.triggered_alarms == ["service-5xx"]

        def test_a_bad_revision_is_refused_before_anything_starts(shiftlab_rehearse):
            import pytest
            from shiftlab.common.configfile import ConfigError

            with pytest.raises(ConfigError, match=r"taskDefinition[.]cpu: 64 "):
                shiftlab_rehearse("shiftlab.yaml", cpu=64)

        def test_a_strategy_is_checked_with_the_files_configuration(shiftlab_rehearse):
            import pytest
            import yaml
            from shiftlab.common.configfile import ConfigError

            config = yaml.safe_load(open("shiftlab.yaml"))
            config["deploymentConfiguration"]["lifecycleHooks"] = [
                {"hookTargetArn": "command:true", "lifecycleStages": ["POST_SCALE_UP"]}]
            with pytest.raises(ConfigError, match=r"deploymentConfiguration[.]lifecycleHooks: .* not ROLLING"):
                shiftlab_rehearse(config, strategy="ROLLING")

        def test_a_release_that_never_gets_healthy_times_out(shiftlab_rehearse):
            # No circuit breaker: as on ECS the deployment would stay IN_PROGRESS; the rehearsal's timeout ends it.
            import yaml

            config = yaml.safe_load(open("shiftlab.yaml"))
            config["deploymentConfiguration"]["deploymentCircuitBreaker"] = {"enable": False, "rollback": False}
            outcome = shiftlab_rehearse(config, env={"HEALTH_FAIL": "1"}, load_rps=0, timeout=6)
            assert outcome.timed_out and outcome.status == "ROLLBACK_SUCCESSFUL", outcome.reason
            assert outcome.reason == "the rehearsal timed out after 6 s"

        async def test_the_stack_fixture(shiftlab_stack):
            async with shiftlab_stack("shiftlab.yaml") as stack:
                assert len(stack.controller.sets["blue"].running()) == 2
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=auto", timeout=240)
    result.assert_outcomes(passed=6)


def test_a_headless_project_rehearses_with_shiftlabs_work_queue(pytester: pytest.Pytester) -> None:
    """The example headless config (no load balancer): no load, the work
    queue fed by the plugin, and its accounting on the outcome."""
    config = resources.files("shiftlab").joinpath("examples/headless.yaml").read_text()
    pytester.makefile(".yaml", headless=config)
    pytester.makepyfile(test_worker='''
        def test_good_consumer_takes_over(shiftlab_rehearse):
            outcome = shiftlab_rehearse("headless.yaml", env={"WORK_MS": "5"}, time_scale=200, queue_rate=40)
            assert outcome.ok, outcome.reason
            assert outcome.load is None  # no load balancer: no requests
            q = outcome.queue
            assert q.sent > 0 and q.lost == 0 and q.duplicates == 0, q.line()
            assert q.by_consumer.get("revision 2", 0) > 0, q.line()

        def test_failing_consumer_is_rolled_back(shiftlab_rehearse):
            outcome = shiftlab_rehearse("headless.yaml", env={"FAILURE_RATE": "0.5"}, time_scale=200, queue_rate=40)
            assert outcome.status == "ROLLBACK_SUCCESSFUL"
            assert outcome.triggered_alarms == ["queue-consumer-failures"]
            assert outcome.queue.lost == 0 and outcome.queue.duplicates == 0, outcome.queue.line()
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=2)
