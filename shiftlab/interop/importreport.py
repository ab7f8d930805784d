"""What an import did with each part of its input: mapped (where it went),
ignored (and why), or left for a local answer (a placeholder in the config
that the user fills in).

A minimal report shared by the Terraform import and the CodeDeploy
migration; its shape (mapped / ignored with reason / needs a local answer)
is the one the CloudFormation import's report has."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    mapped: list[tuple[str, str]] = field(default_factory=list)  # (source, config path)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (source, why)
    needs_answer: list[tuple[str, str]] = field(default_factory=list)  # (config path, what to answer)

    def map(self, source: str, target: str) -> None:
        if (source, target) not in self.mapped:
            self.mapped.append((source, target))

    def ignore(self, source: str, why: str) -> None:
        if (source, why) not in self.ignored:
            self.ignored.append((source, why))

    def ask(self, target: str, what: str) -> None:
        if (target, what) not in self.needs_answer:
            self.needs_answer.append((target, what))

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapped": [{"source": s, "target": t} for s, t in self.mapped],
            "ignored": [{"source": s, "reason": r} for s, r in self.ignored],
            "needsAnswer": [{"target": t, "question": q} for t, q in self.needs_answer],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def render(self) -> str:
        lines = [f"mapped ({len(self.mapped)}):"]
        lines += [f"  {s} -> {t}" for s, t in self.mapped]
        lines.append(f"ignored ({len(self.ignored)}):")
        lines += [f"  {s}: {r}" for s, r in self.ignored]
        lines.append(f"needs a local answer ({len(self.needs_answer)}):")
        lines += [f"  {t}: {q}" for t, q in self.needs_answer]
        return "\n".join(lines) + "\n"

    def header(self) -> str:
        """The config file's opening comment: each placeholder to fill in."""
        if not self.needs_answer:
            return ""
        lines = ["# Placeholders (shiftlab import): local parts AWS's files do not say; change them:"]
        lines += [f"#   {t}: {q}" for t, q in self.needs_answer]
        return "\n".join(lines) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Write `text` to `path` whole or not at all: a temporary file beside it,
    renamed over it (an interrupted import never leaves half a config)."""
    import os
    import tempfile
    from pathlib import Path

    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
