"""README's "From AWS and back: Terraform" and "migrating from CodeDeploy"
examples are the commands' real output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

DATA = Path(__file__).parent / "data"


def readme_block(after: str, lang: str = "") -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    m = re.compile(rf"```{lang}\n(.*?)```", re.DOTALL).search(text, start)
    assert m is not None
    return m.group(1)


def test_the_terraform_example(tmp_path: Path) -> None:
    module = DATA / "tf_bluegreen"
    res = subprocess.run([sys.executable, "-m", "shiftlab", "import", "terraform", str(module), "--var-file",
                          str(module / "prod.tfvars"), "--account-id", "123456789012", "-o", "shiftlab.yaml"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    shown = [line for line in res.stdout.splitlines() if not line.startswith("  aws_")]
    assert readme_block("and prints the report (the 93 mapped").splitlines() == shown


def test_the_codedeploy_example() -> None:
    res = subprocess.run([sys.executable, "-m", "shiftlab", "import", "codedeploy",
                          str(DATA / "codedeploy" / "appspec.json"), "--deployment-config",
                          "CodeDeployDefault.ECSCanary10Percent5Minutes", "--hook-role-arn",
                          "arn:aws:iam::111222333444:role/ecs-hooks"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert readme_block("prints (the report on stderr, left out here):", "yaml") == res.stdout
