"""Task -> atomic steps: `decompose("open the middle drawer, pick up the tape, ...")`.

    steps = decompose("open the middle drawer, pick up the tape, place it on the table, close the drawer")
    [s.verb for s in steps]   # ['open', 'pick', 'place', 'close']
    [s.object for s in steps] # ['middle drawer', 'tape', 'tape', 'middle drawer']

Planner "rules" (offline default): split the instruction into clauses (commas, semicolons, "then",
"and" before a verb, "after that"), read each clause's verb and object with the RoboAct-CLIP annotation
parser's rules lexicon (envs/datasets/annotations.py; the same verb vocabulary the encoders
are trained on), read a destination after on/onto/in/into/to, and resolve pronouns ("it") and bare
nouns ("the drawer" after "the middle drawer") to the earlier mention. Planner "llm": the same module's
OpenAI-compatible client (one client in the project) is asked Algorithm 1's question; its reply's
ordered `actions` list is canonicalised through the same rules.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from typing import Any

from envs.demos import SKILL_VOCAB

# canonical parser action -> (step verb used by skills and Table V, demo skill label in SKILL_VOCAB)
VERBS: dict[str, tuple[str, str]] = {
    "open": ("open", "open"), "close": ("close", "close"),
    "pick up": ("pick", "grasp"), "take": ("pick", "grasp"), "put down": ("place", "place"),
    "push": ("push", "push"), "pull": ("pull", "push"), "slide left": ("push", "push"),
    "slide right": ("push", "push"), "turn on": ("turn on", "turn"), "turn off": ("turn off", "turn"),
    "rotate clockwise": ("turn", "turn"), "rotate counterclockwise": ("turn", "turn"),
}  # fmt: skip
OBJECTS = ("top drawer", "middle drawer", "bottom drawer", "drawer", "tape", "roll of tape", "table", "cube",
           "bowl", "plate", "stove", "knob", "mug", "bottle")  # fmt: skip
PRONOUNS = {"it", "them", "that", "this", "one"}
_SPLIT = re.compile(r"\s*(?:[,;.]|\bthen\b|\bafter that\b|\bafterwards\b|\bfinally\b)\s*", re.I)
_DEST = re.compile(r"\b(?:on|onto|in|into|to|inside)\s+(?:the\s+|a\s+)?([a-z ]+?)\s*$", re.I)
assert all(label in SKILL_VOCAB for _, label in VERBS.values())


@dataclass(frozen=True)
class AtomicStep:
    verb: str  # "open" | "pick" | "place" | "close" | "push" | ...
    object: str  # resolved object ("middle drawer", "tape")
    target: str = ""  # destination ("table") for place
    text: str = ""  # the clause as written
    skill: str = "idle"  # label in envs.demos.SKILL_VOCAB for demo files

    @property
    def instruction(self) -> str:
        """A one-step instruction for a step-conditioned policy: "open the middle drawer"."""
        verb = {"pick": "pick up"}.get(self.verb, self.verb)
        prep = "on" if self.target in ("table", "plate", "stove") else ("to" if self.verb in ("push", "pull") else "in")
        tail = f" {prep} the {self.target}" if self.target else ""
        return f"{verb} the {self.object}{tail}"


class DecompositionError(ValueError):
    """The instruction (or the planner's reply) has a clause with no known atomic action."""


def _parsers() -> Any:
    return importlib.import_module("envs.datasets.annotations")


def _clauses(text: str) -> list[str]:
    parts = [p for p in _SPLIT.split(text.strip()) if p and p.strip()]
    out: list[str] = []
    verb_words = {w for v in VERBS for w in v.split()[:1]} | {"place", "put", "lift", "grab", "grasp", "shut",
                                                                "set", "drop", "switch"}
    for p in parts:
        # "and" starts a new clause only when a verb follows ("pick up and place it" vs "salt and pepper")
        pieces = re.split(r"\s+and\s+(?=(?:" + "|".join(sorted(verb_words)) + r")\b)", p.strip(), flags=re.I)
        out.extend(x.strip() for x in pieces if x.strip())
    return out


def _step(verb_action: str, obj: str | None, clause: str, prev: list[AtomicStep]) -> AtomicStep:
    if verb_action not in VERBS:
        raise DecompositionError(f"clause {clause!r}: action {verb_action!r} has no atomic skill "
                                 f"(known: {sorted(VERBS)})")
    verb, label = VERBS[verb_action]
    target = ""
    m = _DEST.search(clause)
    if m and verb in ("place", "push", "pull"):
        target = m.group(1).strip()
        if obj and obj == target:  # the parser read the destination as the object
            head = clause[: m.start()].split()
            obj = next((o for o in OBJECTS if o in " ".join(head[1:]).lower()), None)
    obj = (obj or "").strip()
    if obj == "roll of tape":
        obj = "tape"
    fixture = verb in ("open", "close")  # these act on a fixture (drawer); pick/place on a movable object
    if not obj or obj in PRONOUNS:
        # a pronoun refers to the latest mention of the right kind (object or destination)
        mentions = [m for s in prev for m in (s.object, s.target) if m]
        kind = [m for m in mentions if m.endswith("drawer") == fixture]
        obj = kind[-1] if kind else ""
    elif obj == "drawer":
        # "the drawer" after "the middle drawer" is that drawer
        earlier = [m for s in prev for m in (s.object, s.target) if m.endswith("drawer")]
        obj = earlier[-1] if earlier else obj
    return AtomicStep(verb, obj, target, clause, label)


def decompose(instruction: str, planner: str = "rules", parser_cfg: Any = None) -> list[AtomicStep]:
    """An instruction -> ordered atomic steps (see module docstring). DecompositionError names the clause."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise DecompositionError("empty instruction")
    ap = _parsers()
    rules = ap.RulesParser(ap.ParserConfig(), {"object": list(OBJECTS)})
    if planner == "llm":
        client = ap.build_parser(parser_cfg)
        return steps_from_reply(client.request(instruction), rules)
    if planner != "rules":
        raise ValueError(f"planner must be 'rules' or 'llm', got {planner!r}")
    steps: list[AtomicStep] = []
    for clause in _clauses(instruction):
        try:
            p = rules.parse(clause)
        except ap.AnnotationParseError as e:
            raise DecompositionError(f"clause {clause!r}: {e}") from None
        steps.append(_step(p.action, p.object, clause, steps))
    return _forward_refs(steps)


def _forward_refs(steps: list[AtomicStep]) -> list[AtomicStep]:
    """"pick up and place the tape": an objectless step takes the next step's object."""
    out = list(steps)
    for i in range(len(out) - 1, -1, -1):
        if not out[i].object:
            nxt = next((s.object for s in out[i + 1:] if s.object), "")
            if not nxt:
                raise DecompositionError(f"clause {out[i].text!r}: no object it could refer to")
            out[i] = AtomicStep(out[i].verb, nxt, out[i].target, out[i].text, out[i].skill)
    return out


def steps_from_reply(reply: Any, rules: Any = None) -> list[AtomicStep]:
    """A chat-completions reply whose content is {"actions": [{"verb", "object"}, ...]} -> steps."""
    ap = _parsers()
    rules = rules or ap.RulesParser(ap.ParserConfig(), {"object": list(OBJECTS)})
    try:
        content = reply["choices"][0]["message"]["content"]
        m = re.search(r"\{.*\}", content, re.S)
        actions = json.loads(m.group(0) if m else content)["actions"]
    except (KeyError, IndexError, TypeError, json.JSONDecodeError, AttributeError):
        raise DecompositionError("planner reply has no JSON content with an 'actions' list") from None
    steps: list[AtomicStep] = []
    for i, a in enumerate(actions if isinstance(actions, list) else []):
        if not isinstance(a, dict) or not isinstance(a.get("verb"), str):
            raise DecompositionError(f"planner reply actions[{i}] is not a {{verb, object}} object")
        clause = f"{a['verb']} {a.get('object') or ''}".strip()
        try:
            p = rules.parse(clause)
        except ap.AnnotationParseError as e:
            raise DecompositionError(f"planner reply actions[{i}] {clause!r}: {e}") from None
        steps.append(_step(p.action, p.object, clause, steps))
    if not steps:
        raise DecompositionError("planner reply lists no actions")
    return _forward_refs(steps)
