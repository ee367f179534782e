"""Validation of the optional ``cohort.yaml`` (DESIGN.md section 2), with line numbers."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import yaml

from cartfit.data.csvfile import path_kind, suggest
from cartfit.data.schema import META_DEFAULTS, META_KEYS
from cartfit.errors import Problem

_KEYS = {k.name: k for k in META_KEYS}


def _scalar(node: yaml.Node) -> Any:
    """The Python value of a YAML node (safe constructors only)."""
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _positive_number(value: Any) -> bool:
    """A finite number > 0 (booleans, which YAML reads from yes/no, are not numbers)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(value) and value > 0


def check_meta(path: Path, file: str, problems: list[Problem]) -> dict[str, Any]:
    """``cohort.yaml`` as a dict with every key of the schema (defaults filled in).

    A missing file gives the defaults. Problems (unreadable text, YAML syntax, not a mapping,
    unknown or repeated keys, a conversion factor or threshold that is not a positive number,
    a text entry that is not text) are appended to ``problems`` at the key's line.
    """
    meta = dict(META_DEFAULTS)
    kind = path_kind(path)
    if kind == "missing":
        return meta
    if kind != "file":
        message = {"folder": "is a folder", "other": "is not a regular file"}.get(
            kind, f"is {kind}"
        )
        problems.append(Problem(file, 0, "", message, "a YAML file"))
        return meta
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        problems.append(Problem(file, 0, "", f"cannot be read as UTF-8 text ({err})", "UTF-8 YAML"))
        return meta
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(err, "problem", None) or "syntax error"
        problems.append(Problem(file, line, "", f"invalid YAML: {problem}", "key: value lines"))
        return meta
    if root is None:
        return meta
    if not isinstance(root, yaml.MappingNode):
        problems.append(
            Problem(
                file,
                root.start_mark.line + 1,
                "",
                "is not a mapping",
                "key: value lines, keys among " + ", ".join(_KEYS),
            )
        )
        return meta
    seen: set[str] = set()
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        key = str(key_node.value)
        if key not in _KEYS:
            close = suggest(key, list(_KEYS))
            hint = f"; did you mean {close!r}?" if close else ""
            problems.append(
                Problem(file, line, key, "unknown key", "one of " + ", ".join(_KEYS) + hint)
            )
            continue
        if key in seen:
            problems.append(Problem(file, line, key, "key appears twice", "each key once"))
            continue
        seen.add(key)
        value = _scalar(value_node)
        if value is None:
            continue
        if key == "priors":
            meta[key] = _check_priors(value_node, file, problems)
            continue
        if _KEYS[key].positive_number:
            if isinstance(value, str):  # YAML 1.1 reads 1e9 (no dot) as text
                with contextlib.suppress(ValueError):
                    value = float(value)
            if not _positive_number(value):
                problems.append(
                    Problem(
                        file,
                        line,
                        key,
                        f"{value!r} is not a positive number",
                        "a number > 0: " + _KEYS[key].meaning,
                    )
                )
                continue
            meta[key] = float(value)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            meta[key] = str(value)
        else:
            problems.append(Problem(file, line, key, "is not text", _KEYS[key].meaning))
    return meta


def _check_priors(node: yaml.Node, file: str, problems: list[Problem]) -> dict[str, dict]:
    """``priors: {parameter: {median: x, log_sd: y}}`` with positive numbers, at their lines.

    Parameter names are checked against the model when a fit is built (they depend on it)."""
    expected = "parameter: {median: number > 0, log_sd: number > 0}"
    if not isinstance(node, yaml.MappingNode):
        problems.append(
            Problem(file, node.start_mark.line + 1, "priors", "is not a mapping", expected)
        )
        return {}
    out: dict[str, dict] = {}
    for name_node, spec_node in node.value:
        name, line = str(name_node.value), name_node.start_mark.line + 1
        spec = _scalar(spec_node)
        if not isinstance(spec, dict) or set(spec) - {"median", "log_sd"} or not spec:
            problems.append(
                Problem(file, line, f"priors.{name}", f"{spec!r} is not valid", expected)
            )
            continue
        good = {}
        for field, value in spec.items():
            if not _positive_number(value):
                problems.append(
                    Problem(
                        file,
                        line,
                        f"priors.{name}.{field}",
                        f"{value!r} is not a positive number",
                        expected,
                    )
                )
            else:
                good[field] = float(value)
        out[name] = good
    return out
