#!/usr/bin/env python3
"""How long `shiftlab import cloudformation` and `shiftlab export` take on a
template at CloudFormation's and ALB's sizes: 500 resources (CloudFormation's
default quota per template), a production listener with 100 rules (ALB's
default quota per load balancer), 10 alarms the service names and 50 it does
not, the rest resources nothing mapped reads. Run on demand; nothing is
asserted (the goal: an import a user does not wait for, well under a second).

    .venv/bin/python tests/perf/bench_interop.py               # 5 runs, the fastest
    .venv/bin/python tests/perf/bench_interop.py --runs 10 --rules 100

The figures: the template's size, import (resolve + map + the validation
`shiftlab validate` does), export --format cli-json and cloudformation, and,
for scale, cfn-lint on the exported snippet.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shiftlab.interop.cloudformation import import_template
from shiftlab.interop.exporter import cli_json, cloudformation
from shiftlab.interop.template import load_template

BASE = Path(__file__).resolve().parents[1] / "interop" / "templates" / "ecs-bluegreen.yaml"


def big_template(rules: int, named_alarms: int, other_alarms: int, total: int) -> dict[str, Any]:
    t = load_template(BASE)
    res = t["Resources"]
    rule = res["ALBListenerProdRule"]
    for i in range(2, rules + 1):
        r = copy.deepcopy(rule)
        r["Properties"]["Priority"] = i
        r["Properties"]["Conditions"] = [{"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/p{i}/*"]}}]
        res[f"Rule{i}"] = r
    alarm = res["Target5xxAlarm"]
    names = []
    for i in range(named_alarms):
        a = copy.deepcopy(alarm)
        a["Properties"]["AlarmName"] = {"Fn::Sub": f"${{Environment}}-web-5xx-{i}"}
        res[f"Alarm{i}"] = a
        names.append({"Ref": f"Alarm{i}"})
    res["ECSDemoService"]["Properties"]["DeploymentConfiguration"]["Alarms"]["AlarmNames"] = names
    for i in range(other_alarms):
        a = copy.deepcopy(alarm)
        a["Properties"]["AlarmName"] = f"other-{i}"
        res[f"Other{i}"] = a
    i = 0
    while len(res) < total:
        res[f"Param{i}"] = {"Type": "AWS::SSM::Parameter",
                            "Properties": {"Type": "String", "Value": {"Fn::Sub": "${AWS::Region}-" + str(i)}}}
        i += 1
    return t


def fastest(runs: int, fn: Any) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--resources", type=int, default=500)
    args = ap.parse_args()
    template = big_template(args.rules, 10, 50, args.resources)
    size = len(json.dumps(template))
    print(f"template: {len(template['Resources'])} resources, {args.rules} listener rules, {size / 1024:.0f} KiB")
    t_import, (config, report) = fastest(args.runs, lambda: import_template(copy.deepcopy(template)))
    print(f"import cloudformation  {t_import * 1000:8.1f} ms   ({len(report.entries)} report entries, "
          f"{sum(len(ls.get('Rules', [])) for ls in config['loadBalancer']['Listeners'])} rules, "
          f"{len(config['alarms'])} alarms)")
    t_cli, files = fastest(args.runs, lambda: cli_json(config))
    print(f"export cli-json        {t_cli * 1000:8.1f} ms   ({len(files)} files)")
    t_cfn, snippet = fastest(args.runs, lambda: cloudformation(config))
    print(f"export cloudformation  {t_cfn * 1000:8.1f} ms   ({len(snippet['cloudformation.yaml']) / 1024:.0f} KiB)")
    from cfnlint.api import ManualArgs, lint

    t_lint, matches = fastest(1, lambda: lint(snippet["cloudformation.yaml"], config=ManualArgs(regions=["us-east-1"])))
    print(f"cfn-lint (reference)   {t_lint * 1000:8.1f} ms   ({len(matches)} findings)")
    print(f"import / cfn-lint: {t_import / t_lint:.2f}")


if __name__ == "__main__":
    main()
