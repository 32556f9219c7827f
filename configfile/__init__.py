"""YAML configuration files validated by pydantic models, every mistake reported as
`FILE:LINE KEY.PATH: message`.

People fix configs from these lines alone (a technician at a store, an operator on a central
server), so each names the file, the line of the offending key (or of its nearest parent when
the key is missing) and the key path. Shared by the device (`edge_agent.config_report`) and
central (`central.config`), which must not import each other's code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

EX_CONFIG = 78  # sysexits.h EX_CONFIG: systemd units treat it as "do not restart blindly"
PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)
# Checks of what a validated config points at (files, model hashes): (key path, message) each.
Check = Callable[[M], list[tuple[PathKey, str]]]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.key}: {self.message}"


class ConfigError(Exception):
    """Raised with every issue found; str() is the report, one issue per line."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues

    @property
    def lines(self) -> list[str]:
        return [str(i) for i in self.issues]


def format_key(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _index_lines(
    node: yaml.Node, path: PathKey, lines: dict[PathKey, int], dups: list[tuple[PathKey, int]]
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                dups.append((path + (key,), key_node.start_mark.line + 1))
            seen.add(key)
            # The key's own line: that is where a technician looks for it.
            lines[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(value_node, path + (key,), lines, dups)
            lines[path + (key,)] = key_node.start_mark.line + 1
        # pydantic reports dict keys with int coercion (antenna numbers): index both forms.
        for key_node, _ in node.value:
            if isinstance(key_node.value, str) and key_node.value.lstrip("-").isdigit():
                lines.setdefault(path + (int(key_node.value),), key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines, dups)


def _line_for(loc: PathKey, lines: dict[PathKey, int]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


def _clean_loc(loc: tuple[Any, ...]) -> PathKey:
    # pydantic inserts union-member tags (e.g. 'str', 'int', 'function-after[...]') into locs;
    # they are not keys a technician wrote.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"}):
            continue
        out.append(part)
    return tuple(out)


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown key (check spelling and indentation)"
    if err["type"] == "missing":
        return "required key is missing"
    return msg.removeprefix("Value error, ")


_BOOLEAN_AS_NUMBER = (
    "expected a number, got a YAML boolean (yes, no, on, off, true and false are booleans in YAML)"
)
_NUMERIC_ERRORS = ("greater_than", "less_than", "multiple_of", "int_", "float_", "finite_number")


def _booleans_taken_as_numbers(raw: Any, value: Any, loc: PathKey) -> Iterator[PathKey]:
    """Where a YAML boolean was silently converted to a number by pydantic's lax mode.

    `fps: yes` would otherwise validate as 1 frame per second. Walking the validated config
    beside the raw data finds every such field without marking each numeric field strict.
    """
    if isinstance(value, BaseModel) and isinstance(raw, dict):
        for name, field in type(value).model_fields.items():
            key = field.alias or name
            if key in raw:
                yield from _booleans_taken_as_numbers(raw[key], getattr(value, name), (*loc, key))
    elif isinstance(value, list) and isinstance(raw, list):
        for i, (raw_item, item) in enumerate(zip(raw, value, strict=False)):
            yield from _booleans_taken_as_numbers(raw_item, item, (*loc, i))
    elif isinstance(value, dict) and isinstance(raw, dict):
        for key, raw_item in raw.items():
            item = value.get(key, value.get(str(key)))
            yield from _booleans_taken_as_numbers(raw_item, item, (*loc, str(key)))
    elif isinstance(raw, bool) and isinstance(value, int | float) and not isinstance(value, bool):
        yield loc


def parse_text(
    text: str,
    file: str,
    model: type[M],
    checks: list[Check[M]] | tuple[()] = (),
    *,
    allow_empty: bool = False,
) -> M:
    """Parse and validate; raises ConfigError listing every issue. `checks` run on a config
    that validated (what it points at: files, credentials), still without touching hardware.
    `allow_empty`: a file with nothing in it (comments only) means every default; otherwise
    it is an error (a device config without a store id is a mistake)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # The context mark is where the broken construct began (an unclosed bracket, a key
        # without its colon); the problem mark is where the parser gave up, often a line or
        # more later. The technician has to edit the first one.
        mark = exc.context_mark or exc.problem_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if exc.context_mark and exc.problem_mark and exc.problem_mark.line != exc.context_mark.line:
            problem += f" (noticed at line {exc.problem_mark.line + 1})"
        raise ConfigError(
            [ConfigIssue(file, line, "<yaml>", f"YAML syntax error: {problem}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, 1, "<yaml>", f"YAML error: {exc}")]) from None
    if (root is None or data is None) and not allow_empty:
        raise ConfigError([ConfigIssue(file, 1, "<root>", "the file is empty")])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(file, 1, "<root>", "the top level must be a mapping of sections")]
        )
    lines: dict[PathKey, int] = {}
    dups: list[tuple[PathKey, int]] = []
    if root is not None:
        _index_lines(root, (), lines, dups)
    issues = [
        ConfigIssue(file, line, format_key(p), "duplicate key (the later one would win)")
        for p, line in dups
    ]
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            message = _message(dict(err))
            if isinstance(err.get("input"), bool) and err["type"].startswith(_NUMERIC_ERRORS):
                # `fps: no` arrives as 0 and fails `> 0`: name the real mistake instead.
                message = _BOOLEAN_AS_NUMBER
            issues.append(ConfigIssue(file, _line_for(loc, lines), format_key(loc), message))
        issues.sort(key=lambda i: i.line)
        raise ConfigError(issues) from None
    for loc in _booleans_taken_as_numbers(data, cfg, ()):
        issues.append(ConfigIssue(file, _line_for(loc, lines), format_key(loc), _BOOLEAN_AS_NUMBER))
    for check in checks:
        for loc, message in check(cfg):
            issues.append(ConfigIssue(file, _line_for(loc, lines), format_key(loc), message))
    if issues:
        issues.sort(key=lambda i: i.line)
        raise ConfigError(issues)
    return cfg


def missing_files(paths: list[tuple[PathKey, Path | None]]) -> list[tuple[PathKey, str]]:
    """A check's issues for the files a config names that are not there (None: not set)."""
    return [(key, f"file {p} not found") for key, p in paths if p is not None and not p.is_file()]


def load_file(
    path: str | Path,
    model: type[M],
    checks: list[Check[M]] | tuple[()] = (),
    *,
    allow_empty: bool = False,
) -> M:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(p), 0, "<file>", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(p), 0, "<file>", f"cannot read: {exc}")]) from None
    return parse_text(text, str(p), model, checks, allow_empty=allow_empty)


__all__ = [
    "EX_CONFIG",
    "Check",
    "ConfigError",
    "ConfigIssue",
    "PathKey",
    "format_key",
    "load_file",
    "missing_files",
    "parse_text",
]
