"""shiftlab's work queue (shiftlab.workqueue): durable across a restart,
hidden for its visibility timeout and delivered again after it unless
deleted (at-least-once), duplicates counted, SQS's limits; and over HTTP
on loopback with the client a task uses.

SQS's rules it follows: a received message stays in the queue, invisible
for the visibility timeout (0..43,200 s), and is delivered again unless
deleted; ReceiveMessage returns 1..10 messages:
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shiftlab.workqueue import QueueClient, QueueServer, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_messages_survive_a_restart_of_the_queue(tmp_path: Path) -> None:
    clock = Clock()
    q = WorkQueue(tmp_path / "q.sqlite", clock)
    q.send(["a", "b", "c"])
    first = q.receive(1, 30)[0]
    assert q.delete(first.id, first.receipt, "blue")
    q.close()
    again = WorkQueue(tmp_path / "q.sqlite", clock)
    stats = again.stats()
    assert (stats["sent"], stats["deleted"], stats["waiting"]) == (3, 1, 2)
    assert [m.body for m in again.receive(10, 30)] == ["b", "c"]
    again.close()


def test_a_received_message_is_hidden_for_its_visibility_timeout_then_delivered_again(tmp_path: Path) -> None:
    clock = Clock()
    q = WorkQueue(tmp_path / "q.sqlite", clock)
    (mid,) = q.send(["job"])
    first = q.receive(1, 5)[0]
    assert (first.id, first.receive_count) == (mid, 1)
    assert q.receive(1, 5) == []  # in flight: nobody else gets it
    assert q.stats()["inFlight"] == 1
    clock.t += 4.9
    assert q.receive(1, 5) == []
    clock.t += 0.2  # the visibility timeout is over, nobody deleted it
    second = q.receive(1, 5)[0]
    assert (second.id, second.receive_count) == (mid, 2) and second.receipt != first.receipt
    assert q.delete(mid, second.receipt, "green")
    clock.t += 10
    assert q.receive(1, 5) == []  # deleted: never again
    stats = q.stats()
    assert (stats["deleted"], stats["redelivered"], stats["duplicates"]) == (1, 1, 0)
    assert stats["deletedBy"] == {"green": 1}


def test_a_consumer_that_finishes_after_its_timeout_is_counted_as_a_duplicate(tmp_path: Path) -> None:
    clock = Clock()
    q = WorkQueue(tmp_path / "q.sqlite", clock)
    q.send(["slow job"])
    slow = q.receive(1, 1)[0]
    clock.t += 2
    fast = q.receive(1, 30)[0]
    assert q.delete(fast.id, fast.receipt, "fast")
    assert q.delete(slow.id, slow.receipt, "slow")  # as SQS: an older receipt still deletes
    stats = q.stats()
    assert (stats["deleted"], stats["deletes"], stats["duplicates"]) == (1, 2, 1)
    assert stats["deletedBy"] == {"fast": 1}


def test_release_makes_a_failed_message_visible_at_once(tmp_path: Path) -> None:
    q = WorkQueue(tmp_path / "q.sqlite", Clock())
    q.send(["job"])
    m = q.receive(1, 300)[0]
    assert not q.release(m.id, "not-its-receipt")
    assert q.release(m.id, m.receipt)
    assert q.receive(1, 300)[0].receive_count == 2


@pytest.mark.parametrize(("count", "visibility", "field"), [
    (0, 30, "max"), (11, 30, "max"), (1, -1, "visibilityTimeout"), (1, 43201, "visibilityTimeout"),
])
def test_sqs_limits_name_the_field(tmp_path: Path, count: int, visibility: float, field: str) -> None:
    q = WorkQueue(tmp_path / "q.sqlite", Clock())
    with pytest.raises(ValueError, match=f"^{field}: "):
        q.receive(count, visibility)


def test_oldest_first_and_at_most_ten(tmp_path: Path) -> None:
    q = WorkQueue(tmp_path / "q.sqlite", Clock())
    q.send([f"m{i}" for i in range(15)])
    assert [m.body for m in q.receive(10, 30)] == [f"m{i}" for i in range(10)]


def test_delete_of_a_message_never_received_is_refused(tmp_path: Path) -> None:
    q = WorkQueue(tmp_path / "q.sqlite", Clock())
    (mid,) = q.send(["job"])
    assert not q.delete(mid, "made-up")
    assert not q.delete(999, "made-up")


async def test_over_http_with_the_tasks_client(tmp_path: Path) -> None:
    import asyncio

    server = QueueServer(WorkQueue(tmp_path / "q.sqlite"))
    await server.start()
    try:
        client = QueueClient(server.url)

        def work() -> dict[str, object]:
            client.send(["a", "b"])
            got = client.receive(10, 30)
            assert [m.body for m in got] == ["a", "b"]
            assert client.release(got[1])
            assert client.delete(got[0], "blue")
            return client.stats()

        stats = await asyncio.to_thread(work)
        assert (stats["sent"], stats["deleted"], stats["waiting"]) == (2, 1, 1)
        import aiohttp

        async with aiohttp.ClientSession() as s, s.post(server.url + "/receive", json={"max": 20}) as r:
            assert r.status == 400 and (await r.json())["error"].startswith("max: ")
    finally:
        await server.stop()
        server.queue.close()


def test_the_cli_serves_sends_and_counts_and_the_queue_outlives_its_process(tmp_path: Path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import time

    from shiftlab.common.ports import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    shiftlab = [sys.executable, "-m", "shiftlab", "queue"]

    def serve() -> subprocess.Popen[str]:
        proc = subprocess.Popen([*shiftlab, "serve", "--port", str(port), "--path", str(tmp_path / "q.sqlite")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while subprocess.run([*shiftlab, "stats", "--url", url], capture_output=True, timeout=20).returncode:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        return proc

    def stop(proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)

    proc = serve()
    try:
        sent = subprocess.run([*shiftlab, "send", "5", "--url", url], capture_output=True, text=True, timeout=20)
        assert sent.returncode == 0 and sent.stdout.strip() == "sent 5", sent.stderr
    finally:
        stop(proc)
    proc = serve()  # a new process on the same file
    try:
        out = subprocess.run([*shiftlab, "stats", "--url", url], capture_output=True, text=True, timeout=20)
        assert json.loads(out.stdout)["sent"] == 5 and json.loads(out.stdout)["waiting"] == 5
    finally:
        stop(proc)
    gone = subprocess.run([*shiftlab, "stats", "--url", url], capture_output=True, text=True, timeout=20)
    assert gone.returncode == 1 and gone.stderr.startswith(f"cannot read {url}: ")


async def test_a_web_page_cannot_send_it_anything(tmp_path: Path) -> None:
    """As the controller's API: a cross-site form post (text/plain, another
    Origin) or a rebound Host is refused; the queue stays as it was."""
    import aiohttp

    server = QueueServer(WorkQueue(tmp_path / "q.sqlite"))
    await server.start()
    try:
        async with aiohttp.ClientSession() as s:
            body = '{"bodies": ["evil"]}'
            async with s.post(server.url + "/send", data=body, headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 415
            async with s.post(server.url + "/send", json={"bodies": ["evil"]},
                              headers={"Origin": "https://evil.example"}) as r:
                assert r.status == 403
            async with s.get(server.url + "/stats", headers={"Host": "evil.example"}) as r:
                assert r.status == 403
        assert server.queue.stats()["sent"] == 0
    finally:
        await server.stop()
        server.queue.close()
