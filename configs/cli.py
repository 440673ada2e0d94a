"""The error contract of every command-line entry point: bad input is one line, not a traceback.

    if __name__ == "__main__":
        sys.exit(run_cli(main))

Errors that describe the user's input (a missing or damaged file, a wrong config value, an unknown
registry name, a refused checkpoint) print as `error: <message>` on stderr and exit with status 2.
Anything else is a bug in this project and keeps its traceback. Set ATOMVLA_TRACEBACK=1 to see the
traceback of input errors too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

# FileNotFoundError/FileExistsError/PermissionError are OSErrors; KeyError covers unknown registry
# names (configs.registry.UnknownNameError); ValueError covers ConfigError and DamagedFileError.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, FileNotFoundError, FileExistsError,
                                                 PermissionError, NotADirectoryError, IsADirectoryError)


def run_cli(main: Callable[..., Any], *args: Any) -> int:
    """Call `main(*args)`; an input error becomes one line on stderr and exit status 2."""
    try:
        ret = main(*args)
    except INPUT_ERRORS as e:
        if os.environ.get("ATOMVLA_TRACEBACK"):
            raise
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {' '.join(msg.split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is on disk; rerun with --resume to continue", file=sys.stderr)
        return 130
    return ret if isinstance(ret, int) else 0


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the few entry points without a config dataclass (their flags are their keys):
    the docstring as written, and every option's default in `--help`, as `configs.loader.parse_cli`
    lists config keys. Wrap `main` in `run_cli` for the one-line input errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        shown = action.option_strings and not any(action.default is v for v in (None, False, argparse.SUPPRESS))
        if shown and "default" not in (action.help or "").lower():  # the help may say it already
            action.help = f"{action.help} (default: %(default)r)" if action.help else "default: %(default)r"
        return action
