"""`shiftlab lint`'s reports: text, JSON and SARIF 2.1.0 (what GitHub code
scanning reads), and where in the config file each finding's field is.

SARIF 2.1.0: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html
(GitHub's subset: https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning).
"""

from __future__ import annotations

import json
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from shiftlab.lint import RULES, Finding, counts

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_line(text: str, path: str) -> int | None:
    """The 1-based line of the field `path` (`a.b[2].c`) in a YAML or JSON
    document, or of the deepest part of it the document has; None when the
    text does not compose (pyyaml's composer keeps each node's mark)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line: int | None = None
    for key, index in _STEP.findall(path):
        if key and isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _version() -> str:
    try:
        return version("shiftlab")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return "0"


def _lines(findings: list[Finding], text: str | None) -> list[int | None]:
    return [field_line(text, f.path) if text is not None else None for f in findings]


def as_text(findings: list[Finding], source: str, text: str | None, rps: float | None) -> str:
    """The findings and a summary line; `rps` None: a headless service, which
    has no request traffic, so the line says nothing of it."""
    out = []
    for f, line in zip(findings, _lines(findings, text), strict=True):
        where = f"{source}:{line}" if line else source
        out.append(f"{where}: {f.severity}: {f.rule} {f.path}: {f.message}\n    see {f.help_uri}")
    n = counts(findings)
    out.append(f"{source}: {n['error']} error(s), {n['warning']} warning(s), {n['note']} note(s)"
               + (f" at {rps:g} req/s" if rps is not None else ""))
    return "\n".join(out) + "\n"


def as_json(findings: list[Finding], source: str, text: str | None, rps: float | None) -> str:
    doc = {
        "config": source,
        "trafficRps": rps,
        "counts": counts(findings),
        "findings": [{"rule": f.rule, "severity": f.severity, "path": f.path, "message": f.message,
                      "helpUri": f.help_uri, "line": line}
                     for f, line in zip(findings, _lines(findings, text), strict=True)],
    }
    return json.dumps(doc, indent=2) + "\n"


def _artifact_uri(source: str) -> str:
    p = Path(source)
    return p.as_uri() if p.is_absolute() else p.as_posix()


def as_sarif(findings: list[Finding], source: str, text: str | None, rps: float | None) -> str:
    rule_ids = list(RULES)
    results = []
    for f, line in zip(findings, _lines(findings, text), strict=True):
        location: dict[str, Any] = {"artifactLocation": {"uri": _artifact_uri(source)}}
        if line:
            location["region"] = {"startLine": line}
        results.append({
            "ruleId": f.rule,
            "ruleIndex": rule_ids.index(f.rule),
            "level": f.severity,  # SARIF's levels: error, warning, note (and none)
            "message": {"text": f"{f.path}: {f.message}"},
            "locations": [{"physicalLocation": location}],
        })
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "shiftlab",
                "version": _version(),
                "rules": [{"id": r.id, "name": r.id, "shortDescription": {"text": r.title},
                           "helpUri": r.help_uri, "defaultConfiguration": {"level": r.severity}}
                          for r in RULES.values()],
            }},
            "properties": {"trafficRps": rps},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


FORMATS = {"text": as_text, "json": as_json, "sarif": as_sarif}
