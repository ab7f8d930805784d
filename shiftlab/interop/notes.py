"""Entries of a `report.Report` made once each (an importer may meet the
same argument twice), and the comment that opens a written config with the
values it needs a local answer for."""

from __future__ import annotations

import re

from shiftlab.interop.report import LOCAL_MARK, Entry, Report


def _add(report: Report, entry: Entry) -> None:
    if entry not in report.entries:
        report.entries.append(entry)


def mapped(report: Report, source: str, target: str) -> None:
    _add(report, Entry("mapped", source, target))


def ignored(report: Report, source: str, reason: str) -> None:
    _add(report, Entry("ignored", source, "", reason))


def local(report: Report, target: str, reason: str, source: str = "") -> None:
    """A placeholder at `target` the user answers (`reason` says what it is)."""
    _add(report, Entry("local", source, target, reason))


def header(report: Report) -> str:
    entries = report.of("local")
    if not entries:
        return ""
    lines = [f"# {LOCAL_MARK}: local parts AWS's description does not give; placeholders to change:"]
    lines += [f"# {LOCAL_MARK} {e.target}: {e.reason}" for e in entries]
    return "\n".join(lines) + "\n"


def marked(text: str, report: Report) -> str:
    """`text` (a config's YAML) with each placeholder's line ending in
    `# SHIFTLAB-LOCAL`, and the list of them at the top."""
    from shiftlab.lintformat import field_line

    lines = text.split("\n")
    for e in report.of("local"):
        if not re.fullmatch(r"[A-Za-z][\w.\[\]-]*", e.target):
            continue  # not a config path (an ARN note, a hook's function)
        n = field_line(text, e.target)
        last = re.findall(r"[A-Za-z_][\w-]*", e.target)[-1]
        if n is not None and f"{last}:" in lines[n - 1] and LOCAL_MARK not in lines[n - 1]:
            lines[n - 1] += f"  # {LOCAL_MARK}"
    return header(report) + "\n".join(lines)
