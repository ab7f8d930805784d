"""A rehearsed config as AWS takes it. Each format is a function from the
validated settings' sections (the config file's dict) to files: name ->
text. `FORMATS` lists them for `shiftlab export --format`; another format
(Terraform) registers itself here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Exporter = Callable[[dict[str, Any]], dict[str, str]]

FORMATS: dict[str, Exporter] = {}
