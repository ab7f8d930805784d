"""The Docker tests' ground: an engine or a clear reason, the images, and
clean-up by label.

Tests marked `docker` skip with a reason on a machine whose Docker engine
does not answer (or lacks the images), and fail instead when
SHIFTLAB_REQUIRE_DOCKER=1 (CI sets it): there, a missing engine is a broken
CI, not a reason to pass. Images are built by compose/build-images.sh.

Every container a test starts carries an owner label of that test's own;
the `owners` fixture removes whatever still carries it afterwards, even
when the test failed.
"""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller.backends.docker_spec import L_OWNER

REPO = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("SHIFTLAB_REQUIRE_DOCKER") == "1"
SAMPLE_IMAGE = os.environ.get("SHIFTLAB_TEST_SAMPLE_IMAGE", "shiftlab/sample:local")
SHIFTLAB_IMAGE = os.environ.get("SHIFTLAB_TEST_SHIFTLAB_IMAGE", "shiftlab/shiftlab:local")
SESSION = uuid.uuid4().hex[:8]
TEST_OWNER_PREFIX = "shiftlab-test-"


@functools.cache
def docker_problem() -> str | None:
    """Why the Docker tests cannot run here, or None."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:
        return f"no Docker engine answers ({exc}); start one, or run only the other tests"
    missing = []
    for image in (SAMPLE_IMAGE, SHIFTLAB_IMAGE):
        try:
            client.images.get(image)
        except Exception:
            missing.append(image)
    client.close()
    if missing:
        return f"images missing: {', '.join(missing)} (build them: compose/build-images.sh)"
    return None


def require_docker() -> None:
    problem = docker_problem()
    if problem is None:
        return
    if REQUIRE:
        pytest.fail(f"SHIFTLAB_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(autouse=True)
def _docker_or_reason(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker") is not None:
        require_docker()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    # Session fixtures are set up before the autouse check above: check here too.
    require_docker()
    import docker

    client = docker.from_env(timeout=60)
    yield client
    client.close()


def remove_owned(client: Any, owner: str) -> list[str]:
    """Force-remove every container labelled with `owner`; their names."""
    gone = []
    for c in owned(client, owner):
        gone.append(c.name)
        try:
            c.remove(force=True)
        except Exception as exc:
            if "No such container" not in str(exc) and "already in progress" not in str(exc):
                raise
    return gone


def owned(client: Any, owner: str, **labels: str) -> list[Any]:
    """The containers labelled with `owner` (and `labels`), as they are now."""
    import docker

    filters = [f"{L_OWNER}={owner}", *(f"io.shiftlab.{k}={v}" for k, v in labels.items())]
    found = []
    for row in client.api.containers(all=True, filters={"label": filters}):
        try:
            found.append(client.containers.get(row["Id"]))
        except docker.errors.NotFound:
            continue  # removed between the listing and the look
    return found


@pytest.fixture
def owners(docker_client: Any) -> Iterator[Callable[[], str]]:
    """Makes owner labels for the test; removes their containers at the end, whatever happened."""
    made: list[str] = []

    def make() -> str:
        owner = f"{TEST_OWNER_PREFIX}{SESSION}-{uuid.uuid4().hex[:8]}"
        made.append(owner)
        return owner

    yield make
    for owner in made:
        remove_owned(docker_client, owner)


@pytest.fixture(scope="session")
def test_images(docker_client: Any) -> Iterator[dict[str, str]]:
    """Images made for the tests from the local ones (no registry): a new
    good revision, a bad one (every answer a 500), one with a HEALTHCHECK,
    and a plain Python with the shiftlab package (for the contract tests'
    commands). Removed at the end of the session."""
    tags = {
        "good": (f"shiftlab-test/good:{SESSION}", f"FROM {SAMPLE_IMAGE}\nENV GREETING=v2\n"),
        "bad": (f"shiftlab-test/bad:{SESSION}", f"FROM {SAMPLE_IMAGE}\nENV ERROR_RATE=1\n"),
        "healthcheck": (f"shiftlab-test/healthcheck:{SESSION}", f"FROM {SAMPLE_IMAGE}\n" + HEALTHCHECK),
        "python": (f"shiftlab-test/python:{SESSION}", f"FROM {SHIFTLAB_IMAGE}\nENTRYPOINT []\nCMD [\"python3\"]\n"),
    }
    built: dict[str, str] = {}
    try:
        for key, (tag, dockerfile) in tags.items():
            subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=dockerfile, text=True, check=True,
                           capture_output=True, timeout=120)
            built[key] = tag
        yield built
    finally:
        for tag in built.values():
            subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, timeout=60)


# Healthy while /health answers 200: the sample service fails it with healthFail.
HEALTHCHECK = (
    'HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["python3", "-c", '
    '"import os, urllib.request; urllib.request.urlopen('
    "'http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=2)\"]\n"
)
