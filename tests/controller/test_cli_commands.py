"""The CLI against a running stack: each command a real `python -m shiftlab`
process, pointed at the controller API of a real stack (real processes, the
real proxy) by --url or by the config file, as a user runs them."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import yaml

from shiftlab.controller import eventlog
from tests.controller.support import cli, config
from tests.helpers import eventually, logged

FAST_LINEAR = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 50, "stepBakeTimeInMinutes": 0},
               "bakeTimeInMinutes": 0}
LONG_CANARY = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 60}}


def deployment_id(deploy_output: str) -> str:
    m = re.search(r"^deployment (\w+): revision (\d+) -> (\d+) \((\w+)\)$", deploy_output, re.MULTILINE)
    assert m, deploy_output
    return m.group(1)


async def test_status_deploy_watch_list_describe_logs(stack_factory, tmp_path) -> None:
    data = config(tmp_path, FAST_LINEAR)
    stack = await stack_factory(data)
    url = ["--url", stack.api_url]

    rc, out, err = await cli("status", *url)
    assert rc == 0, err
    assert out.splitlines()[0] == "service web: revision 1 in blue (timeScale 60)"
    assert re.search(r"^  blue +primary +revision 1 +2/2 running$", out, re.MULTILINE), out
    assert "deployment in progress: none" in out
    rc, out, err = await cli("list", *url)
    assert (rc, out) == (0, "no deployments yet (shiftlab deploy starts one)\n"), err
    rc, out, err = await cli("describe", *url)
    assert rc == 1 and "error: not found: no deployments yet" in err, (out, err)
    # Nothing to watch: it says so and ends rather than waiting for ever.
    rc, out, err = await cli("watch", *url, timeout=20)
    assert rc == 1 and "no deployments yet" in err, (out, err)

    # A refused override is refused by the API as the config file's would be: exit 2, every field named.
    override = {"canaryConfiguration": {"canaryPercent": 0.05},
                "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}]}
    rc, out, err = await cli("deploy", *url, "--strategy", "CANARY", "--deployment-configuration",
                             json.dumps(override))
    assert rc == 2, (out, err)
    assert "  deploymentConfiguration.canaryConfiguration.canaryPercent: 0.05 is out of range 0.1..100" in err
    assert ("  deploymentConfiguration.lifecycleHooks[0].lifecycleStages: a PAUSE hook cannot run at "
            "PRODUCTION_TRAFFIC_SHIFT, as in ECS") in err
    assert stack.controller.current is None

    rc, out, err = await cli("deploy", *url, "--env", "GREETING=v2", "--watch", timeout=90)
    assert rc == 0, (out, err)
    first = deployment_id(out)
    assert "deployment " + first + ": revision 1 -> 2 (LINEAR)" in out
    assert "SUCCESSFUL" in out and "CLEAN_UP" in out, out
    # The view shows each task set's running/desired tasks (beside its health, as last scraped).
    assert re.search(r"│ green +2/2 ", out) and re.search(r"│ blue +0/0 ", out), out

    rc, out, err = await cli("list", *url)
    assert rc == 0, err
    [line] = out.splitlines()
    assert re.fullmatch(rf"{first}  \S+Z  LINEAR +1->2 +SUCCESSFUL", line), line
    rc, out, err = await cli("describe", *url)
    assert rc == 0, err
    assert f"service-deployment/local/web/{first}\n  status SUCCESSFUL (deployment completed)" in out
    assert "LINEAR: revision 1 -> 2, stage CLEAN_UP, production 100% green" in out
    assert "production traffic: 50% green (verified)" in out, "the events follow"
    rc, out, err = await cli("describe", *url, first, "--json")
    assert rc == 0, err
    described = json.loads(out)
    assert described["status"] == "SUCCESSFUL" and described["shiftlab"]["id"] == first
    assert described["targetServiceRevision"]["runningTaskCount"] == 2
    assert logged(described["events"], eventlog.STATUS_CHANGED)[-1] == {"status": "SUCCESSFUL",
                                                                          "reason": "deployment completed"}

    rc, out, err = await cli("status", *url)
    assert rc == 0, err
    assert out.splitlines()[0] == "service web: revision 2 in green (timeScale 60)"
    assert re.search(r"^  green +primary +revision 2 +2/2 running$", out, re.MULTILINE), out
    # The same, finding the controller through the config file instead of --url.
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump({**data, "controller": {**data["controller"], "port": stack.api_port}}))
    rc, out_c, err = await cli("status", "-c", str(path))
    assert (rc, out_c) == (0, out), err

    rc, out, err = await cli("logs", *url)
    assert rc == 0, err
    tasks = [line.split() for line in out.splitlines()]
    assert sorted((t[2], t[3]) for t in tasks) == [("1", "STOPPED")] * 2 + [("2", "RUNNING")] * 2, out
    green_task = next(t[0] for t in tasks if t[2] == "2")
    rc, out, err = await cli("logs", *url, green_task)
    assert rc == 0, err
    assert "sample service revision 2" in out
    rc, out, err = await cli("logs", *url, green_task, "--tail", "1")
    assert rc == 0 and len(out.splitlines()) == 1, (out, err)
    rc, out, err = await cli("logs", *url, "no-such-task")
    assert rc == 1 and "not found" in err, (out, err)

    # Watching a deployment that has ended shows it and exits by its outcome.
    rc, out, err = await cli("watch", *url, timeout=20)
    assert rc == 0 and "SUCCESSFUL" in out, (out, err)


async def test_stop_and_stop_rollback(stack_factory, tmp_path) -> None:
    data = config(tmp_path, LONG_CANARY)
    stack = await stack_factory(data)
    ctl = stack.controller
    url = ["--url", stack.api_url]

    rc, out, err = await cli("deploy", *url, "--env", "GREETING=v2")
    assert rc == 0, err
    first = deployment_id(out)
    # watch follows the deployment from another process and ends with it.
    watcher = asyncio.ensure_future(cli("watch", *url, timeout=60))
    await eventually(lambda: ctl.current.production_percent == 30, timeout=30, what="the canary step")
    rc, out, err = await cli("stop", *url, "--rollback")
    assert rc == 0, err
    assert out.strip() == f"deployment {first}: rolling back to revision 1"
    rc, out, err = await watcher
    assert rc == 1, (out, err)
    assert "ROLLBACK_SUCCESSFUL" in out and "stopped by the user" in out, out
    assert await stack.router.weights("prod/default") == {"blue": 1, "green": 0}
    rc, out, err = await cli("describe", *url, first)
    assert rc == 0, err
    assert "status ROLLBACK_SUCCESSFUL" in out and "rollback: stopped by the user" in out, out

    rc, out, err = await cli("deploy", *url, "--env", "GREETING=v3")
    assert rc == 0, err
    second = deployment_id(out)
    await eventually(lambda: ctl.current.production_percent == 30, timeout=30, what="the canary step")
    rc, out, err = await cli("stop", *url)
    assert rc == 0, err
    assert out.strip() == (f"deployment {second}: stopping; traffic stays at 30% green and both task sets keep "
                           "running (use --rollback to go back to blue)")
    final = await ctl.wait_finished(second, timeout=10)
    assert final.status == "STOPPED"
    assert await stack.router.weights("prod/default") == {"blue": 70, "green": 30}
    rc, out, err = await cli("describe", *url, "--json")
    assert rc == 0, err
    d: dict[str, Any] = json.loads(out)
    assert (d["shiftlab"]["id"], d["status"]) == (second, "STOPPED")
    assert d["stoppedAt"] is not None and d["stoppedAt"] == d["finishedAt"]
    assert d["rollback"] is None
    # Nothing left to stop.
    rc, out, err = await cli("stop", *url)
    assert rc == 1 and f"deployment {second} is not in progress" in err, (out, err)
    # An earlier deployment is not the current one: watching it ends at once too.
    rc, out, err = await cli("watch", *url, first, timeout=20)
    assert rc == 1 and "ROLLBACK_SUCCESSFUL" in out, (out, err)
    rc, out, err = await cli("list", *url)
    assert rc == 0, err
    assert [line.split()[0] for line in out.splitlines()] == [second, first]
    assert [line.split()[-1] for line in out.splitlines()] == ["STOPPED", "ROLLBACK_SUCCESSFUL"]


async def test_a_controller_that_is_not_there() -> None:
    rc, out, err = await cli("status", "--url", "http://127.0.0.1:9")
    assert rc == 1 and "cannot reach the controller at http://127.0.0.1:9" in err, (out, err)
    rc, out, err = await cli("watch", "--url", "http://127.0.0.1:9", timeout=20)
    assert rc == 1 and "cannot reach the controller" in err, (out, err)
