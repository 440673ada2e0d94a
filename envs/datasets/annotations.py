"""Annotation parsers for RoboAct-CLIP's dataset preparation (roboact_clip.txt Algorithm 1).

A parser turns one free-text annotation into (number of actions, subject, action, object):

    parser = build_parser(ParserConfig(name="rules"), vocab={"action": [...], "object": [...]})
    p = parser.parse("The robot opens the drawer.")   # ParsedAnnotation(n_actions=1, subject="robot", ...)

Registry:
  - "rules" (offline default): a verb lexicon (inflected surface forms + direction modifiers ->
    canonical action) and object noun-phrase extraction (longest vocabulary match in the phrase
    after the verb, else the phrase itself without determiners/adverbs). The number of actions is
    the number of non-overlapping verb mentions.
  - "openai_compatible": any chat-completions endpoint (`url` = full endpoint URL, `model`), asked
    Algorithm 1's question and told to answer in a small JSON schema; the reply's
    `choices[0].message.content` is parsed; malformed replies raise AnnotationParseError.

`compose_description` writes Algorithm 1's template, `recombination_text` Eq. 19's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from configs.registry import Registry

SUBJECT_WORDS = {
    "robot": ("robot", "robots", "arm", "robotic", "gripper", "manipulator", "franka", "ur5", "widowx"),
    "human": ("human", "humans", "person", "people", "man", "woman", "hand", "hands", "someone", "operator",
              "user", "he", "she", "demonstrator"),
}  # fmt: skip
DETERMINERS = {"the", "a", "an", "this", "that", "its", "their", "his", "her", "some", "one"}
# words that end an object noun phrase (direction modifiers, adverbs, prepositions, conjunctions)
NP_STOP = {"away", "closer", "back", "forward", "to", "toward", "towards", "into", "onto", "in", "on", "off", "from",
           "with", "at", "by", "of", "and", "then", "clockwise", "counterclockwise", "anticlockwise", "left", "right",
           "up", "down", "slightly", "again", "over", "under", "out", "after", "before", "while", "so", "until"}  # fmt: skip


class AnnotationParseError(ValueError):
    """An annotation (or a parser's reply about it) could not be turned into (n, S, A, O)."""


@dataclasses.dataclass
class ParsedAnnotation:
    n_actions: int
    subject: str | None  # "robot" | "human" | None (not stated)
    action: str | None
    object: str | None
    verbs: list[str] = dataclasses.field(default_factory=list)  # canonical actions, in order


@dataclasses.dataclass
class ParserConfig:
    name: str = "rules"  # "rules" | "openai_compatible"
    default_subject: str = ""  # used when the text names no subject ("" = report it as bad)
    # openai_compatible
    url: str = ""  # full chat-completions endpoint, e.g. http://127.0.0.1:8000/v1/chat/completions
    model: str = ""
    api_key_env: str = ""  # name of an environment variable holding a bearer token (optional)
    timeout_s: float = 60.0
    temperature: float = 0.0

    def validate(self) -> None:
        if self.name not in PARSERS:
            raise ValueError(f"parser.name: {self.name!r} is not one of {PARSERS.names()}")
        if self.default_subject not in ("", "robot", "human"):
            raise ValueError(f"parser.default_subject must be '', 'robot' or 'human', got {self.default_subject!r}")
        if self.name == "openai_compatible" and (not self.url or not self.model):
            raise ValueError("parser: openai_compatible needs parser.url (chat-completions endpoint) and parser.model")


PARSERS: Registry[Callable[..., Any]] = Registry("annotation parser")
register_parser = PARSERS.register


def build_parser(cfg: ParserConfig | None = None, vocab: dict[str, list[str]] | None = None):
    """A parser from its config; `vocab` ({"action": [...], "object": [...]}) canonicalises names."""
    cfg = cfg or ParserConfig()
    cfg.validate()
    return PARSERS.get(cfg.name)(cfg, vocab or {})


def compose_description(subject: str, action: str, obj: str) -> str:
    """Algorithm 1, line 9: "Robot (or Human) [A] [O]. Action is A, Object is O."."""
    return f"{subject.capitalize()} {action} {obj}. Action is {action}, Object is {obj}."


def recombination_text(subject: str, action: str, obj: str) -> str:
    """Eq. 19: "s a the o, action is a"."""
    return f"{subject} {action} the {obj}, action is {action}"


def normalize_text(text: str) -> str:
    """Lower-case, unify quotes/dashes, keep letters/digits/spaces and clause separators (, ; .)."""
    t = text.lower().replace("’", "'").replace("–", "-").replace("—", "-")
    t = re.sub(r"\b(counter|anti)[\s-]+clockwise\b", "counterclockwise", t)
    t = re.sub(r"[^a-z0-9,;.\s'-]", " ", t)
    t = re.sub(r"([,;.])", r" \1 ", t)
    return re.sub(r"\s+", " ", t).strip()


# ---------------------------------------------------------------------------------- lexicon
def _inflections(verb: str) -> list[str]:
    """Surface forms of a base verb: pick -> pick, picks, picked, picking (with simple English rules)."""
    forms = {verb}
    if verb.endswith("e"):
        forms |= {verb + "s", verb + "d", verb[:-1] + "ing"}
    elif re.search(r"(s|sh|ch|x|z)$", verb):
        forms |= {verb + "es", verb + "ed", verb + "ing"}
    elif re.search(r"[^aeiou]y$", verb):
        forms |= {verb + "s", verb[:-1] + "ied", verb + "ing"}
    elif re.search(r"[^aeiou][aeiou][bdgklmnprt]$", verb) and verb not in ("open", "turn"):
        forms |= {verb + "s", verb + verb[-1] + "ed", verb + verb[-1] + "ing"}
    else:
        forms |= {verb + "s", verb + "ed", verb + "ing"}
    irregular = {"put": {"put", "puts", "putting"}, "take": {"take", "takes", "took", "taking", "taken"},
                 "hold": {"hold", "holds", "held", "holding"}, "lift": {"lift", "lifts", "lifted", "lifting"},
                 "spin": {"spin", "spins", "spun", "spinning"}}  # fmt: skip
    return sorted(irregular.get(verb, forms))


@dataclasses.dataclass
class LexEntry:
    action: str  # canonical action name
    verb: str  # base verb
    particle: str = ""  # e.g. "up" in "pick up" (may come after the object: "pick the cube up")
    modifier: tuple[str, ...] = ()  # words that must follow within the clause, e.g. ("left",)
    exclude: tuple[str, ...] = ()  # words that must NOT follow (e.g. "counterclockwise" for "clockwise")


DEFAULT_LEXICON: list[LexEntry] = [
    LexEntry("pick up", "pick", "up"), LexEntry("pick up", "lift"), LexEntry("pick up", "grab"),
    LexEntry("pick up", "grasp"),
    LexEntry("put down", "put", "down"), LexEntry("put down", "put"), LexEntry("put down", "set", "down"), LexEntry("put down", "place"),
    LexEntry("put down", "lower"), LexEntry("put down", "drop"),
    LexEntry("push", "push"), LexEntry("pull", "pull"), LexEntry("pull", "drag"),
    LexEntry("slide left", "slide", modifier=("left",)), LexEntry("slide right", "slide", modifier=("right",)),
    LexEntry("slide left", "move", modifier=("left",)), LexEntry("slide right", "move", modifier=("right",)),
    LexEntry("rotate counterclockwise", "rotate", modifier=("counterclockwise", "anticlockwise", "counter-clockwise")),
    LexEntry("rotate clockwise", "rotate", modifier=("clockwise",), exclude=("counterclockwise", "anticlockwise")),
    LexEntry("rotate counterclockwise", "turn", modifier=("counterclockwise", "anticlockwise", "counter-clockwise")),
    LexEntry("rotate clockwise", "turn", modifier=("clockwise",), exclude=("counterclockwise", "anticlockwise")),
    LexEntry("rotate counterclockwise", "spin", modifier=("counterclockwise", "anticlockwise")),
    LexEntry("rotate clockwise", "spin", modifier=("clockwise",), exclude=("counterclockwise", "anticlockwise")),
    LexEntry("open", "open"), LexEntry("close", "close"), LexEntry("close", "shut"),
    LexEntry("turn on", "turn", "on"), LexEntry("turn off", "turn", "off"), LexEntry("turn on", "switch", "on"),
    LexEntry("turn off", "switch", "off"),
    LexEntry("take", "take"), LexEntry("stack", "stack"), LexEntry("wipe", "wipe"), LexEntry("pour", "pour"),
    LexEntry("fold", "fold"), LexEntry("flip", "flip"), LexEntry("insert", "insert"), LexEntry("hold", "hold"),
]  # fmt: skip
CLAUSE_BREAK = {",", ";", ".", "then", "and", "after", "before", "while"}


@dataclasses.dataclass
class _Mention:
    start: int  # token index of the verb
    end: int  # token index after the verb (and an adjacent particle)
    entry: LexEntry


def _find_mentions(tokens: list[str], lexicon: list[LexEntry]) -> list[_Mention]:
    """Non-overlapping verb mentions, each resolved to one lexicon entry (most specific that fits)."""
    forms: dict[str, list[LexEntry]] = {}
    for e in lexicon:
        for f in _inflections(e.verb):
            forms.setdefault(f, []).append(e)
    out: list[_Mention] = []
    for i, tok in enumerate(tokens):
        if tok not in forms or (out and i < out[-1].end):
            continue
        # the clause this verb governs: up to the next clause break
        j = i + 1
        while j < len(tokens) and tokens[j] not in CLAUSE_BREAK:
            j += 1
        clause = tokens[i + 1 : j]
        best, best_score = None, -1
        for e in forms[tok]:
            if e.particle and e.particle not in clause[:6]:
                continue
            if e.modifier and not any(m in clause for m in e.modifier):
                continue
            if e.exclude and any(m in clause for m in e.exclude):
                continue
            score = 2 * bool(e.particle) + bool(e.modifier)
            if score > best_score:
                best, best_score = e, score
        if best is None:
            continue
        end = i + 1 + int(bool(best.particle) and i + 1 < len(tokens) and tokens[i + 1] == best.particle)
        out.append(_Mention(i, end, best))
    return out


def _object_phrase(tokens: list[str], start: int, objects: list[str]) -> str | None:
    """Object after a verb: the longest vocabulary object in the next clause, else the noun phrase."""
    j = start
    while j < len(tokens) and tokens[j] not in CLAUSE_BREAK:
        j += 1
    clause = tokens[start:j]
    text = " " + " ".join(clause) + " "
    for obj in sorted(objects, key=len, reverse=True):
        if f" {obj} " in text or f" {obj}s " in text:
            return obj
    words = []
    for w in clause:
        if w in DETERMINERS and not words:
            continue
        if w in NP_STOP or w in SUBJECT_WORDS["robot"] and not words:
            if words:
                break
            continue
        words.append(w)
    return " ".join(words) or None


def _subject(tokens: list[str], upto: int) -> str | None:
    for w in tokens[:upto] if upto > 0 else tokens:
        for s, words in SUBJECT_WORDS.items():
            if w in words:
                return s
    return None


@register_parser("rules")
class RulesParser:
    """Offline parser: verb lexicon + object noun-phrase extraction (see module docstring)."""

    def __init__(self, cfg: ParserConfig, vocab: dict[str, list[str]] | None = None):
        self.cfg = cfg
        vocab = vocab or {}
        self.objects = [o.lower() for o in vocab.get("object", [])]
        actions = vocab.get("action")
        self.lexicon = [e for e in DEFAULT_LEXICON if not actions or e.action in actions]
        if actions:  # vocabulary actions without a lexicon entry: their first word is the verb
            known = {e.action for e in self.lexicon}
            for a in actions:
                if a not in known:
                    w = a.split()
                    self.lexicon.append(LexEntry(a, w[0], w[1] if len(w) > 1 else ""))

    def parse(self, text: str) -> ParsedAnnotation:
        if not isinstance(text, str) or not text.strip():
            raise AnnotationParseError("empty annotation")
        tokens = normalize_text(text).split()
        mentions = _find_mentions(tokens, self.lexicon)
        if not mentions:
            raise AnnotationParseError(f"no known action verb in {text!r}")
        subject = _subject(tokens, mentions[0].start) or self.cfg.default_subject or None
        first = mentions[0]
        obj = _object_phrase(tokens, first.end, self.objects)
        return ParsedAnnotation(len(mentions), subject, first.entry.action, obj, [m.entry.action for m in mentions])


PROMPT = ("Identify the number of actions, with verbs and objects, in: {text}\n"
          "Answer with JSON only, no prose: {{\"num_actions\": <int>, \"subject\": \"robot\" | \"human\" | null, "
          "\"actions\": [{{\"verb\": <string>, \"object\": <string>}}, ...]}}")  # fmt: skip


@register_parser("openai_compatible")
class OpenAICompatibleParser:
    """Algorithm 1 line 4 against any chat-completions endpoint (OpenAI JSON schema)."""

    def __init__(self, cfg: ParserConfig, vocab: dict[str, list[str]] | None = None):
        self.cfg = cfg
        self.rules = RulesParser(ParserConfig(), vocab)  # canonicalises verbs/objects of the reply

    def request(self, text: str) -> dict:
        body = {"model": self.cfg.model, "temperature": self.cfg.temperature,
                "messages": [{"role": "system", "content": "You annotate robot manipulation videos."},
                             {"role": "user", "content": PROMPT.format(text=text)}]}  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if self.cfg.api_key_env:
            key = os.environ.get(self.cfg.api_key_env, "")
            if not key:
                raise AnnotationParseError(f"parser.api_key_env: environment variable {self.cfg.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.cfg.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raise AnnotationParseError(f"{self.cfg.url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise AnnotationParseError(f"{self.cfg.url}: request failed ({e})") from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise AnnotationParseError(f"{self.cfg.url}: reply is not JSON: {raw[:200]!r}") from None

    def parse(self, text: str) -> ParsedAnnotation:
        if not isinstance(text, str) or not text.strip():
            raise AnnotationParseError("empty annotation")
        return self.parse_reply(self.request(text))

    def parse_reply(self, reply: Any) -> ParsedAnnotation:
        """A chat-completions reply dict -> ParsedAnnotation; AnnotationParseError naming the bad field."""
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise AnnotationParseError("reply has no choices[0].message.content") from None
        if not isinstance(content, str):
            raise AnnotationParseError("reply field choices[0].message.content is not a string")
        m = re.search(r"\{.*\}", content, re.S)  # tolerate ```json fences / surrounding prose
        try:
            data = json.loads(m.group(0) if m else content)
        except json.JSONDecodeError:
            raise AnnotationParseError(f"reply content is not JSON: {content[:200]!r}") from None
        if not isinstance(data, dict):
            raise AnnotationParseError("reply content is not a JSON object")
        n, actions = data.get("num_actions"), data.get("actions")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise AnnotationParseError(f"reply field num_actions must be a non-negative integer, got {n!r}")
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            raise AnnotationParseError("reply field actions must be a list of {verb, object} objects")
        if n == 0 or not actions:
            raise AnnotationParseError("reply reports no action")
        verb, obj = actions[0].get("verb"), actions[0].get("object")
        if not isinstance(verb, str) or not verb.strip():
            raise AnnotationParseError("reply field actions[0].verb is missing or empty")
        subj = data.get("subject")
        if subj is not None and not isinstance(subj, str):
            raise AnnotationParseError(f"reply field subject must be a string or null, got {subj!r}")
        subject = None
        if subj:
            s = subj.strip().lower()
            subject = next((k for k, words in SUBJECT_WORDS.items() if s == k or s in words), None)
            if subject is None:
                raise AnnotationParseError(f"reply field subject {subj!r} is neither robot nor human")
        subject = subject or self.cfg.default_subject or None
        action, o = self._canonical(verb, obj if isinstance(obj, str) else "")
        return ParsedAnnotation(max(n, len(actions)), subject, action, o, [str(a.get("verb", "")) for a in actions])

    def _canonical(self, verb: str, obj: str) -> tuple[str, str | None]:
        try:
            p = self.rules.parse(f"{verb} {obj}")
            action = p.action
        except AnnotationParseError:
            action = normalize_text(verb)
        o = normalize_text(obj).strip(" .,;")
        o = re.sub(r"^(the|a|an) ", "", o)
        for v in sorted(self.rules.objects, key=len, reverse=True):
            if f" {v} " in f" {o} ":
                o = v
                break
        return action or normalize_text(verb), o or None
