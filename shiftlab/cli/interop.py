"""From AWS and back: `shiftlab import <format> ...` writes a shiftlab config
from what AWS already describes; `shiftlab export` writes a config back out
as AWS takes it. The work is in shiftlab.interop; here only the options."""

from __future__ import annotations

import click


@click.group("import")
def import_() -> None:
    """Write a shiftlab config from an AWS description (a report says what
    was mapped, ignored, and what needs a local answer)."""
