"""Service Connect with the Docker backend: a frontend container calls
`http://catalog:<port>` by the alias's name, exactly as on ECS
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-connect.html:
"your applications can use short names and standard ports"), reaching the
catalog's containers through shiftlab's namespace proxy; test requests reach
green only during a canary. Host networking (the proxy listens on the host's
loopback; the alias is a host name of each container, --add-host)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller import eventlog
from tests.controller.sc_support import BLUE, GREEN, TEST_HEADER, call, frontend_url, sc_config, served_by
from tests.docker.conftest import SAMPLE_IMAGE, owned
from tests.helpers import eventually, logged

pytestmark = pytest.mark.docker

CANARY = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 30},
          "bakeTimeInMinutes": 0}


def docker_sc_config(tmp_path: Path, owner: str) -> dict[str, Any]:
    data = sc_config(tmp_path, CANARY)
    data["service"]["taskDefinition"] = {"image": SAMPLE_IMAGE, "containerPort": 8080, "stopTimeout": 5}
    (client,) = data["service"]["serviceConnectClients"]
    client["taskDefinition"] = {"image": SAMPLE_IMAGE, "command": ["{python}", "/app/sample_frontend.py"],
                                "environment": client["taskDefinition"]["environment"], "stopTimeout": 2}
    data["controller"].update({"backend": "docker", "taskStartTimeoutSeconds": 60,
                               "docker": {"network": "host", "owner": owner}})
    return data


async def test_a_container_calls_the_catalog_by_its_alias_name(stack_factory: Any, tmp_path: Path, owners: Any,
                                                               docker_client: Any) -> None:
    owner = owners()
    data = docker_sc_config(tmp_path, owner)
    port = data["service"]["serviceConnectConfiguration"]["services"][0]["clientAliases"][0]["port"]
    stack = await stack_factory(data)
    status, doc = await asyncio.to_thread(call, frontend_url(stack))
    assert status == 200 and served_by(doc) == BLUE, doc
    # Inside the frontend's container the alias is a host name: http://catalog:<port> as on ECS,
    # without shiftlab's endpoint table.
    (frontend,) = owned(docker_client, owner, service="frontend")
    probe = ("import json, urllib.request; "
             f"print(urllib.request.urlopen('http://catalog:{port}/', timeout=10).read().decode())")
    code, out = await asyncio.to_thread(frontend.exec_run, ["python3", "-c", probe], environment={
        "SHIFTLAB_SC_ENDPOINTS": ""})
    assert code == 0, out
    assert json.loads(out)["targetGroup"] == BLUE
    # The catalog's own containers are in the namespace too (on ECS every task of the service is a client).
    catalog = owned(docker_client, owner, service="catalog")[0]
    code, out = await asyncio.to_thread(catalog.exec_run, ["python3", "-c", probe])
    assert code == 0 and json.loads(out)["targetGroup"] == BLUE, out

    ctl = stack.controller
    assert ctl is not None and stack.records is not None
    records = stack.records
    d = ctl.create_deployment({"env": {"GREETING": "green"}})

    def at_canary() -> bool:
        return any(f["traffic"] == "production" and float(f["percent"]) == 20.0
                   for f in logged(records.events(d.id), eventlog.WEIGHTS_VERIFIED))

    await eventually(at_canary, timeout=120, what="the canary's 20 % verified")
    url = frontend_url(stack)
    tested = Counter([served_by((await asyncio.to_thread(call, url, {TEST_HEADER: "1"}))[1]) for _ in range(10)])
    assert tested == {GREEN: 10}
    production = Counter([served_by((await asyncio.to_thread(call, url))[1]) for _ in range(50)])
    assert production == {BLUE: 40, GREEN: 10}
    ctl.stop_deployment(d.id, rollback=True)
    await ctl.wait_finished(d.id, timeout=120)
