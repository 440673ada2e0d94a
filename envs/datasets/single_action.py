"""RoboAct-CLIP's Algorithm 1 applied to robot-episode annotations (RH20T, BridgeData V2 adapters).

The parsing is NOT re-implemented here: it is the parser registry of
`encoders.roboact.annotation_parsers` (`rules` offline default, `openai_compatible` for a DeepSeek-R1
style endpoint) used by scripts/prepare_single_action.py, imported lazily (envs/ otherwise knows
nothing of encoders/). An annotation is kept when the parser finds exactly one action; the clip's
subject is the episode's own (robot teleoperation vs. human demonstration), its caption Algorithm 1's
description "Robot (or Human) [A] [O]. Action is A, Object is O.".
"""

from __future__ import annotations

import dataclasses
from typing import Any

from envs.datasets.common import Report


@dataclasses.dataclass
class ParserOptions:
    """The fields of encoders.roboact.annotation_parsers.ParserConfig (less default_subject)."""

    name: str = "rules"
    url: str = ""
    model: str = ""
    api_key_env: str = ""
    timeout_s: float = 60.0
    temperature: float = 0.0


class SingleActionFilter:
    """text + subject -> labels dict (action, object, caption) or None (multi-action / unparsable)."""

    def __init__(self, opts: ParserOptions, vocab: dict[str, list[str]] | None = None):
        from encoders.roboact.annotation_parsers import ParserConfig, build_parser, compose_description

        self._compose = compose_description
        self._parsers: dict[str, Any] = {}
        self._make = lambda subject: build_parser(ParserConfig(**dataclasses.asdict(opts), default_subject=subject),
                                                  vocab)  # fmt: skip
        self._cache: dict[tuple[str, str], tuple[str, Any]] = {}
        self._reported: set[str] = set()

    def __call__(self, text: str, subject: str, report: Report, where: str) -> dict | None:
        from encoders.roboact.annotation_parsers import AnnotationParseError

        key = (text, subject)
        if key not in self._cache:
            if subject not in self._parsers:
                self._parsers[subject] = self._make(subject)
            try:
                p = self._parsers[subject].parse(text)
                if p.n_actions > 1:
                    self._cache[key] = ("multi", p.verbs)
                elif not p.action or not p.object:
                    self._cache[key] = ("bad", f"no {'action' if not p.action else 'object'} found")
                else:
                    self._cache[key] = ("ok", (p.action, p.object))
            except AnnotationParseError as e:
                self._cache[key] = ("bad", str(e))
        status, value = self._cache[key]
        if status == "multi":
            report.drop("multi-action annotation (Algorithm 1)")
            return None
        if status == "bad":
            if text not in self._reported:  # one line per distinct annotation
                self._reported.add(text)
                report.malformed(where, f"annotation {text!r} not parsable: {value}")
            report.drop("unparsable annotation")
            return None
        action, obj = value
        return {"subject": subject, "action": action, "object": obj, "caption": self._compose(subject, action, obj)}
