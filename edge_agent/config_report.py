"""Load the device YAML and turn every mistake into `FILE:LINE KEY.PATH: message`.

Technicians fix configs from these lines alone, so each error names the file, the line of the
offending key (or of its nearest parent when the key is missing) and the key path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from edge_agent.config import AgentConfig

EX_CONFIG = 78
PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.key}: {self.message}"


class ConfigError(Exception):
    """Raised with every issue found; str() is the technician-facing report."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


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


ResourceCheck = Callable[[AgentConfig], list[tuple[PathKey, str]]]


def _resource_checks() -> list[ResourceCheck]:
    """Checks of things the YAML points at (model files...), run by check-config and run.

    Explicit list, not plugin discovery: a check that fails to import must fail loudly.
    """
    from edge_agent.preflight import RESOURCE_CHECKS

    return list(RESOURCE_CHECKS)


def parse_config_text(text: str, file: str, check_resources: bool = False) -> AgentConfig:
    """Parse and validate; raises ConfigError listing every issue.

    With check_resources, also verify what the config points at (files, model hashes),
    still without touching hardware.
    """
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
    if root is None or data is None:
        raise ConfigError([ConfigIssue(file, 1, "<root>", "the file is empty")])
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(file, 1, "<root>", "the top level must be a mapping of sections")]
        )
    lines: dict[PathKey, int] = {}
    dups: list[tuple[PathKey, int]] = []
    _index_lines(root, (), lines, dups)
    issues = [
        ConfigIssue(file, line, format_key(p), "duplicate key (the later one would win)")
        for p, line in dups
    ]
    try:
        cfg = AgentConfig.model_validate(data)
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
        issues.append(
            ConfigIssue(
                file,
                _line_for(loc, lines),
                format_key(loc),
                _BOOLEAN_AS_NUMBER,
            )
        )
    if check_resources:
        for check in _resource_checks():
            for loc, message in check(cfg):
                issues.append(ConfigIssue(file, _line_for(loc, lines), format_key(loc), message))
    if issues:
        issues.sort(key=lambda i: i.line)
        raise ConfigError(issues)
    return cfg


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


def load_config(path: str | Path, check_resources: bool = False) -> AgentConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(p), 0, "<file>", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(p), 0, "<file>", f"cannot read: {exc}")]) from None
    return parse_config_text(text, str(p), check_resources=check_resources)


REDACTED = "***"


def redacted_dump(cfg: AgentConfig) -> dict[str, Any]:
    """The effective config as plain data, with secrets and secret locations masked."""
    data = cfg.model_dump(mode="json")
    mqtt = data.get("mqtt", {})
    # The file path and variable name are not secret (a technician needs them to debug);
    # the value is never read here, so it cannot leak.
    if cfg.mqtt.password_file is not None or cfg.mqtt.password_env is not None:
        mqtt["password"] = REDACTED
    return data


__all__ = [
    "EX_CONFIG",
    "ConfigError",
    "ConfigIssue",
    "format_key",
    "load_config",
    "parse_config_text",
    "redacted_dump",
]
