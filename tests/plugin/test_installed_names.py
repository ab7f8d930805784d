"""shiftlab installed into a project that has packages of its own named
`controller` and `proxy` (common names): the wheel adds only `shiftlab` to
the environment, the project's packages keep their names, and the pytest
plugin rehearses a deployment there.

Offline: the wheel is built from this checkout with the test environment's
setuptools, and the fresh environment borrows the test environment's
dependencies through a .pth path entry (which does not carry the editable
install of shiftlab along)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from importlib import resources
from pathlib import Path

from tests.helpers import REPO

TIMEOUT = 300


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, f"{argv} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def test_installed_beside_a_projects_own_controller_and_proxy(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(wheels), str(REPO)])
    wheel = next(wheels.glob("shiftlab-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"shiftlab", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, tops

    env = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(env)])
    python = env / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])

    project = tmp_path / "project"
    for package in ("controller", "proxy"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(f'WHO = "the project\'s own {package}"\n')
    (project / "shiftlab.yaml").write_text(resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text())
    (project / "test_release.py").write_text(textwrap.dedent('''
        import controller
        import proxy


        def test_the_projects_packages_keep_their_names():
            assert controller.WHO == "the project's own controller"
            assert proxy.WHO == "the project's own proxy"


        def test_a_release_survives_the_canary(shiftlab_rehearse):
            import shiftlab.controller

            assert "site-packages" in shiftlab.controller.__file__
            outcome = shiftlab_rehearse("shiftlab.yaml", env={"GREETING": "v2"}, load_rps=20)
            assert outcome.ok, outcome.reason
            assert controller.WHO == "the project's own controller"
    '''))
    res = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_release.py"], cwd=project)
    assert "2 passed" in res.stdout, res.stdout
