"""YAML <-> typed dataclass configs, with dotted `key=value` command-line overrides.

Every CLI in the project builds its config the same way:

    cfg = parse_cli(MakeVideosConfig, argv, flags={"--out": "out", "--takes": "takes"})

which reads an optional `--config FILE`, applies the convenience flags, then positional
`key=value` overrides (`world.frames=8`), and type-checks the result against the dataclass.
Unknown keys and wrong types raise `ConfigError` naming the offending key (and file).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import textwrap
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value or key is wrong; the message names the key and the source.

    `key` is the dotted key at fault when known (parse_cli uses it to say whether the file or the
    command line set it)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check/convert one value against a type hint; raises ConfigError naming `key`."""
    origin = get_origin(tp)
    where = f"'{key}'" + (f" in {source}" if source else "")
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} matches none of {_type_name(tp)}", key=key)
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}", key=key)
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}", key=key)
        return from_dict(tp, value, source=source, prefix=key + ".")
    if origin in (list, tuple):
        if isinstance(value, str):
            # `actions=push,pull` on the command line reads as a list
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}", key=key)
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}", key=key)
            return tuple(_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        out = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}", key=key)
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, key, source): _coerce(v, vt, f"{key}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}", key=key)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}", key=key)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}", key=key)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}", key=key)
    if tp is Path:
        return Path(value)
    raise ConfigError(f"{where}: unsupported config type {_type_name(tp)}", key=key)


def from_dict(cls: type[T], data: dict, source: str = "", prefix: str = "") -> T:
    """Build dataclass `cls` from a nested dict; unknown keys are an error naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source or 'config'}: expected a mapping at '{prefix or '<top>'}', got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f" in {source}" if source else ""
        raise ConfigError(
            f"unknown config key '{prefix}{unknown[0]}'{where}; valid keys under "
            f"'{prefix or '<top>'}': {', '.join(sorted(fields))}",
            key=f"{prefix}{unknown[0]}",
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k, source) for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # missing required field
        raise ConfigError(f"{source or 'config'}: {cls.__name__} at '{prefix or '<top>'}': {e}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:
            raise ConfigError(f"{source or 'config'}: {e}", key=getattr(e, "key", None)) from None
    return obj


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config dataclass (tuples -> lists, Paths -> str) for YAML/JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(cfg)


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """`set_dotted(d, "world.frames", 8)` creates intermediate mappings as needed."""
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a mapping")
        node = nxt
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`"world.frames=8"` -> ("world.frames", 8); values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


INHERIT_KEY = "inherit"


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A YAML mapping; `inherit: other.yaml` (relative to this file) deep-merges this file over another."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    parent = data.pop(INHERIT_KEY, None)
    if parent is not None:
        parent_path = (path.parent / str(parent)).resolve()
        if parent_path in _seen:
            raise ConfigError(f"{path}: '{INHERIT_KEY}' forms a cycle through {parent_path}")
        data = _deep_merge(read_yaml(parent_path, (*_seen, path.resolve())), data)
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> T:
    """Dataclass defaults <- YAML file <- `key=value` overrides, type-checked; an error names the
    place that set the faulty value (the override, the file, or the defaults)."""
    data = read_yaml(path) if path else {}
    items = [(*parse_override(ov), f"override {ov!r}") for ov in overrides]
    return build_config(cls, data, items, str(path) if path else None)


def build_config(cls: type[T], file_data: dict, items: typing.Sequence[tuple[str, Any, str]],
                 config_file: str | None = None) -> T:
    """`cls` from its defaults <- `file_data` (read from `config_file`) <- `items`, each
    `(dotted key, value, label)` in order (the label says where the value came from, e.g.
    "the command line (--suite x)"). A ConfigError names the place that set the faulty value."""
    data = copy.deepcopy(file_data)
    for key, value, _ in items:
        set_dotted(data, key, value)
    try:
        return from_dict(cls, data, source=_SOURCE)
    except ConfigError as e:
        where = _blame(cls, e, file_data, items, config_file)
        raise ConfigError(str(e).replace(_SOURCE, where), key=e.key) from None


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    from configs.runs import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def parse_cli(
    cls: type[T],
    argv: list[str] | None = None,
    *,
    description: str = "",
    flags: dict[str, tuple[str, str]] | None = None,
    positional: dict[str, tuple[str, str]] | None = None,
    prog: str | None = None,
) -> T:
    """Argparse front end shared by every CLI.

    flags: `{"--takes": ("takes", "number of takes")}` maps a flag onto a dotted config key.
    positional: the same for positional arguments (e.g. a dataset directory).
    Everything else on the line of the form key=value is an override.
    `--help` lists every config key of `cls` with its default (and its comment in the source).
    A bad value is one line `prog: error: ...` naming where it was set (exit status 2).
    """
    flags = flags or {}
    positional = positional or {}
    p = _KeysHelpParser(
        prog=prog,
        description=description,
        epilog="Any config key can be set as key=value (dotted for nested keys, e.g. world.frames=8)\n"
        "or in the --config file; the command line wins over the file, the file over the defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.keys_help = lambda: keys_help(cls, {**positional, **flags})
    p.add_argument("--config", help="YAML config file (keys as in configs/)")
    for name, (key, help_) in positional.items():
        p.add_argument(name, help=f"{help_} (config key '{key}')")
    for flag, (key, help_) in flags.items():
        default_value = _default_of(cls, key)
        if isinstance(default_value, bool):
            p.add_argument(flag, action="store_true", default=None, help=f"{help_} (config key '{key}')")
        else:
            p.add_argument(flag, default=None, help=f"{help_} (config key '{key}', default {default_value!r})")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = p.parse_args(argv)
    try:
        file_data = read_yaml(args.config) if args.config else {}
        items: list[tuple[str, Any, str]] = []  # (key, value, where it was set), in order of precedence
        for name, (key, _) in {**positional, **flags}.items():
            raw = getattr(args, name.lstrip("-").replace("-", "_"))
            if raw is None:
                continue
            v = raw
            if isinstance(raw, str):
                v = parse_override(f"x={raw}")[1]
                if isinstance(_default_of(cls, key), str) or _is_path_key(cls, key):
                    v = raw
            label = name if raw is True else f"{name} {raw}" if name.startswith("-") else f"{key} {raw!r}"
            items.append((key, v, f"the command line ({label})"))
        for ov in args.overrides:
            key, value = parse_override(ov)
            items.append((key, value, f"the command line ({ov})"))
        return build_config(cls, file_data, items, args.config)
    except ConfigError as e:
        p.exit(2, f"{p.prog}: error: {' '.join(str(e).split())}\n")
        raise  # unreachable: p.exit exits


class _KeysHelpParser(argparse.ArgumentParser):
    """An ArgumentParser whose help ends with the config keys (listed only when help is asked for)."""

    keys_help: Callable[[], str] | None = None

    def format_help(self) -> str:
        if self.keys_help is not None:
            self.epilog, self.keys_help = f"{self.keys_help()}\n\n{self.epilog or ''}", None
        return super().format_help()


_SOURCE = "\x00source\x00"  # placeholder replaced by the place that set the faulty key


def _base_key(key: str) -> str:
    """`ks[0]` -> `ks`, `model.views[1]` -> `model.views`: the key a list item belongs to."""
    return re.sub(r"\[\d+\]", "", key)


def _in_mapping(data: dict, dotted: str) -> bool:
    """Whether `data` sets `dotted`, one of its parents, or something under it."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
        if not isinstance(node, dict):
            return True
    return True


def _error_of(cls: Any, data: dict) -> str | None:
    """The ConfigError message `from_dict` gives for `data` (None if it builds)."""
    try:
        from_dict(cls, copy.deepcopy(data), source=_SOURCE)
    except ConfigError as e:
        return str(e)
    except Exception:  # noqa: BLE001 - a layer that fails otherwise is not the culprit we look for
        return None
    return None


def _blame(cls: Any, e: ConfigError, file_data: dict, items: typing.Sequence[tuple[str, Any, str]],
           config_file: str | None) -> str:
    """Where the value at fault in `e` was set: an item's label (the command line), the config file,
    or "the defaults". With the faulty key known, the last place that set it; otherwise (a
    `validate()` error that names no key) the layers are replayed: defaults, + the file, + each
    item in turn, and the first layer that gives the same error is blamed."""
    if e.key is not None:
        k = _base_key(e.key)
        related = lambda s: s == k or k.startswith(s + ".") or s.startswith(k + ".")  # noqa: E731
        for key, _, label in reversed(items):
            if related(_base_key(key)):
                return label
        if config_file and _in_mapping(file_data, k):
            return config_file
        return "the defaults"
    target = str(e)
    if _error_of(cls, {}) == target:
        return "the defaults"
    data = copy.deepcopy(file_data)
    if config_file and _error_of(cls, data) == target:
        return config_file
    for key, value, label in items:
        set_dotted(data, key, value)
        if _error_of(cls, data) == target:
            return label
    return items[-1][2] if items else (config_file or "the defaults")


def keys_help(cls: Any, flags: dict[str, tuple[str, str]] | None = None) -> str:
    """`--help` text: every config key of dataclass `cls` (dotted for nested sections) with its
    default and the comment beside it in the source (else the help of its flag in `flags`, which
    map a flag onto `(key, help)` as in `parse_cli`), one key per line."""
    notes: dict[str, str] = {}
    for flag, (key, help_) in (flags or {}).items():
        notes[key] = f"{help_} [{flag}]" if flag.startswith("-") else f"{help_} [positional {flag}]"
    rows = _key_rows(cls, "", notes)
    if not rows:
        return ""
    width = min(26, max(len(k) for k, _ in rows))
    lines = ["config keys (key=default; set as key=value or in the --config file):"]
    for k, comment in rows:
        if not comment:
            lines.append(f"  {k}")
            continue
        pad = f"  {k:<{width}}  "
        if len(k) > width:
            lines.append(f"  {k}")
            pad = " " * (width + 4)
        wrapped = textwrap.wrap(comment, width=max(40, 100 - len(pad))) or [""]
        lines.append(pad + wrapped[0])
        lines += [" " * len(pad) + w for w in wrapped[1:]]
    return "\n".join(lines)


def _key_rows(cls: Any, prefix: str, notes: dict[str, str]) -> list[tuple[str, str]]:
    comments = _field_comments(cls)
    rows: list[tuple[str, str]] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = dataclasses.MISSING
        tp = hints.get(f.name)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            rows += _key_rows(tp, f"{prefix}{f.name}.", notes)
            continue
        shown = "<required>" if default is dataclasses.MISSING else repr(to_dict(default))
        note = notes.get(prefix + f.name, "")
        comment = comments.get(f.name, "")
        if comment and note:
            comment += " " + note[note.rindex("["):]  # the source's comment, and the flag that sets it
        rows.append((f"{prefix}{f.name}={shown}", comment or note))
    return rows


def _field_comments(cls: Any) -> dict[str, str]:
    """{field: the `# comment` on its line in the class source} (empty when the source is unavailable)."""
    import inspect

    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for m in re.finditer(r"^\s+(\w+)\s*:[^\n#]*#\s*(.+)$", src, flags=re.M):
        out.setdefault(m.group(1), m.group(2).strip())
    return out


def _field_type(cls: Any, dotted: str) -> Any:
    tp: Any = cls
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(tp):
            return None
        tp = get_type_hints(tp).get(part)
    return tp


def _is_path_key(cls: Any, dotted: str) -> bool:
    tp = _field_type(cls, dotted)
    return tp is str or tp is Path or (get_origin(tp) in (Union, types.UnionType) and str in get_args(tp))


def _default_of(cls: Any, dotted: str) -> Any:
    node: Any = cls
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(node):
            return None
        f = {f.name: f for f in dataclasses.fields(node)}.get(part)
        if f is None:
            raise ConfigError(f"flag maps to unknown config key '{dotted}'")
        if f.default is not dataclasses.MISSING:
            node = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            node = f.default_factory()  # type: ignore[misc]
        else:
            node = _field_type(cls, dotted)
    return node
