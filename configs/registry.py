"""One registry mechanism for every swappable kind of the project.

    ENCODERS = Registry("encoder", modules=("encoders.baselines", "encoders.invact"))

    @ENCODERS.register("backbone_mean")
    class BackboneMean(ActionEncoder): ...

    ENCODERS.get("backbone_mean")      # the registered object (class or factory)
    ENCODERS.names()                   # sorted names, built-in modules imported first

What every registry does the same way:
- a name registered twice by two different objects is an error naming both;
- built-in modules are imported lazily, the first time a name is looked up, so `import encoders`
  stays light and a package may register into a registry it does not own;
- an unknown name is one clear `KeyError`-compatible error that lists the known names;
- `trusted(module)` says whether a module name belongs to the project's own packages: a checkpoint
  that names a class is only ever resolved through a registry, and only project modules may be
  imported to fill one (so a file from elsewhere cannot make us import arbitrary code).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Packages whose modules may be imported on behalf of a file on disk (checkpoint, config).
PROJECT_PACKAGES = ("encoders", "vla", "policies", "envs", "real_robot", "configs")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; the message lists the known names.

    Subclasses both KeyError (a lookup failed) and ValueError (bad user input), so existing callers
    catching either keep working. `str()` gives the plain message (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def trusted(module: str) -> bool:
    """True when `module` is one of the project's own packages (or a module inside one)."""
    return any(module == p or module.startswith(p + ".") for p in PROJECT_PACKAGES)


class Registry(Generic[T]):
    """Name -> object (a class or a factory), with lazy built-in imports and one error style.

    `kind` names the registry in messages ("encoder", "policy", ...); `modules` are imported on the
    first lookup that misses (they register themselves on import); `hint` is appended to the
    unknown-name message (e.g. "or pass a directory written by save_pretrained").
    """

    def __init__(self, kind: str, modules: Iterable[str] = (), hint: str = "") -> None:
        self.kind = kind
        self._modules = tuple(modules)
        self._loaded = False
        self._items: dict[str, T] = {}
        self.hint = hint

    # -- registration ---------------------------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")`; re-registering the same object is a no-op."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} registry: name must be a non-empty string, got {name!r}")

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        old = self._items.get(name)
        if old is not None and not _same(old, obj):
            raise ValueError(f"{self.kind} name {name!r} is already registered by {_describe(old)}; "
                             f"cannot register {_describe(obj)} under it")
        self._items[name] = obj

    # -- lookup ---------------------------------------------------------------------------------
    def load_builtins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for mod in self._modules:
            importlib.import_module(mod)

    def names(self) -> list[str]:
        self.load_builtins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        if name in self._items:
            return True
        self.load_builtins()
        return name in self._items

    def get(self, name: str) -> T:
        """The object registered as `name`; built-ins are imported on the first miss."""
        if name not in self._items:
            self.load_builtins()
        if name not in self._items:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; registered: {known}"
                                   + (f" ({self.hint})" if self.hint else ""))
        return self._items[name]

    def items(self) -> list[tuple[str, T]]:
        self.load_builtins()
        return sorted(self._items.items())

    def name_of(self, obj: Any) -> str | None:
        """The registered name of `obj` (a registered class or factory), or None."""
        self.load_builtins()
        for name, item in self._items.items():
            if _same(item, obj):
                return name
        return None

    def import_trusted(self, module: str, source: str = "") -> None:
        """Import a project module named by a file (so it can register itself); refuse any other.

        `source` names the file that asked, for the error message."""
        if not module:
            return
        if not trusted(module):
            where = f"{source}: " if source else ""
            raise PermissionError(f"{where}refusing to import module {module!r}: a saved {self.kind} may only "
                                  f"name modules of the project's packages ({', '.join(PROJECT_PACKAGES)})")
        importlib.import_module(module)


def _same(a: Any, b: Any) -> bool:
    # a module re-imported under its script name (python encoders/x.py) defines a fresh class object;
    # treat objects with the same module-qualified name as the same registration
    if a is b:
        return True
    qa = (getattr(a, "__module__", None), getattr(a, "__qualname__", None))
    qb = (getattr(b, "__module__", None), getattr(b, "__qualname__", None))
    return None not in qa and qa == qb


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
