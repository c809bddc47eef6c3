"""Names that become folder or file names (run, stage, source, language): one rule, checked in one place.

A name is a single path component that cannot climb out of its parent or hide: letters, digits, '.',
'_' and '-', not starting with '.', no '..' anywhere, at most `MAX_NAME_LENGTH` characters. The JSON
schema (workflow/schemas/config.schema.yaml) spells the same `NAME_PATTERN`; a test keeps them equal.
"""

from __future__ import annotations

import re

from tessera.errors import ConfigError

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "check_name"]

MAX_NAME_LENGTH = 64
NAME_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


def check_name(value: object, key: str) -> str:
    """`value` if it is a safe single path component, else a ConfigError naming `key` and the rule."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    raise ConfigError(
        f"{key}: {value!r} is not a usable name: it becomes a folder name, so use 1-{MAX_NAME_LENGTH} "
        "letters, digits, '.', '_' or '-', not starting with '.' and without '..' or '/' (e.g. demo-2)"
    )
