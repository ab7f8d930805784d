"""What an import did, for every importer (CloudFormation, Terraform,
CodeDeploy): each source field is mapped (copied into the shiftlab config,
with where it went), ignored (with why: an IAM role, subnets, what a local
rehearsal has no use for) or needs a local answer (a command or image, a
port: shiftlab cannot know it from AWS's description, the written config
holds a marked placeholder).

`ImportProblem` is the one error an importer raises: it names the resource
and the property (`MyService.Properties.DeploymentConfiguration.Alarms`)
and why, so the user can find the line. `write_atomically` writes a config
only whole: a temporary file beside the target, renamed over it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["mapped", "ignored", "local"]

# The marker of a value the user must supply: the written config carries it
# in a comment and in the report, so that `grep SHIFTLAB-LOCAL` finds them all.
LOCAL_MARK = "SHIFTLAB-LOCAL"


class ImportProblem(Exception):
    """An input an importer cannot turn into a config: `where` is the
    resource and property path (`Service.Properties.LoadBalancers[0]`), or the
    file when no resource is to blame."""

    def __init__(self, where: str, message: str):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Entry:
    kind: Kind
    source: str          # the resource and property read (`Service.Properties.DesiredCount`)
    target: str = ""     # where it went in the config (`service.desiredCount`), when mapped or local
    reason: str = ""     # why ignored; what to answer, when local

    def as_dict(self) -> dict[str, str]:
        out = {"kind": self.kind, "source": self.source}
        if self.target:
            out["target"] = self.target
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Report:
    """The entries of one import, in the order they were made."""

    source: str = ""     # the file read
    entries: list[Entry] = field(default_factory=list)

    def mapped(self, source: str, target: str, note: str = "") -> None:
        self.entries.append(Entry("mapped", source, target, note))

    def ignored(self, source: str, reason: str) -> None:
        self.entries.append(Entry("ignored", source, "", reason))

    def local(self, source: str, target: str, reason: str) -> None:
        """A value AWS's description cannot give: `target` holds a placeholder."""
        self.entries.append(Entry("local", source, target, reason))

    def of(self, kind: Kind) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind]

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "mapped": [e.as_dict() for e in self.of("mapped")],
                "ignored": [e.as_dict() for e in self.of("ignored")],
                "local": [e.as_dict() for e in self.of("local")]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"

    def to_text(self) -> str:
        lines: list[str] = []
        for kind, head in (("mapped", "Mapped"), ("ignored", "Ignored"), ("local", "Needs a local answer")):
            entries = self.of(kind)  # type: ignore[arg-type]
            lines.append(f"{head} ({len(entries)}):")
            for e in entries:
                if kind == "mapped":
                    lines.append(f"  {e.source} -> {e.target}" + (f" ({e.reason})" if e.reason else ""))
                elif kind == "ignored":
                    lines.append(f"  {e.source}: {e.reason}")
                else:
                    lines.append(f"  {e.target}: {e.reason}" + (f" (from {e.source})" if e.source else ""))
        return "\n".join(lines) + "\n"


def write_atomically(path: str | Path, text: str) -> None:
    """`text` at `path`, whole or not at all: written to a temporary file in
    the same directory, flushed, then renamed over `path`."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or Path("."), prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
