"""Action-centric captions and hard negatives (instraction.txt Sec. 3) for the atomic world.

A take is a list of steps `(action, object)` done by one subject. Its caption chains the atomic
sentences' verb phrases ("the robot opens the drawer, then picks up the red cube"); its verb
phrases (the DTW / segmentation targets) are short "verb + object" strings ("open the drawer").

- verb-altered negatives: one step's verb is replaced by a different verb of the vocabulary, the
  rest of the caption (subject, objects, other steps) unchanged;
- order-swapped negatives: the steps are permuted (never the identity) with the same vocabulary.

Both generators drop any candidate whose text equals the positive caption, and return at most
`k` distinct captions (fewer when the vocabulary or the step count allows fewer).
"""

from __future__ import annotations

import itertools

import numpy as np

from envs.atomic_world.vocab import ACTIONS, SUBJECTS

Step = tuple[str, str]  # (action, object)
THEN = ", then "


def step_text(action: str, obj: str, templates: dict[str, str] = ACTIONS) -> str:
    """Caption verb phrase of one step, e.g. "pushes the red cube away"."""
    if action not in templates:
        raise ValueError(f"action {action!r} has no caption template; known: {sorted(templates)}")
    return templates[action].format(o=f"the {obj}")


def render_caption(subject: str, steps: list[Step], templates: dict[str, str] = ACTIONS) -> str:
    """"the robot opens the drawer, then picks up the red cube"."""
    if not steps:
        raise ValueError("steps: a caption needs at least one step")
    who = SUBJECTS.get(subject, subject)
    return who + " " + THEN.join(step_text(a, o, templates) for a, o in steps)


def verb_phrases(steps: list[Step]) -> list[str]:
    """Short verb phrases in order, e.g. ["open the drawer", "pick up the red cube"]."""
    return [f"{a} the {o}" for a, o in steps]


def verb_altered(subject: str, steps: list[Step], actions: list[str], k: int = 9, seed: int = 0,
                 templates: dict[str, str] = ACTIONS) -> list[str]:
    """Up to `k` captions with one step's verb swapped for a different vocabulary verb; never the positive."""
    pos = render_caption(subject, steps, templates)
    cands = []
    for s, (a, o) in enumerate(steps):
        for other in actions:
            if other != a:
                alt = list(steps)
                alt[s] = (other, o)
                cands.append(render_caption(subject, alt, templates))
    return _pick(cands, pos, k, seed)


def order_swapped(subject: str, steps: list[Step], k: int = 3, seed: int = 0,
                  templates: dict[str, str] = ACTIONS) -> list[str]:
    """Up to `k` captions with the steps in a different order; never the positive (empty for one step)."""
    pos = render_caption(subject, steps, templates)
    n = len(steps)
    perms = itertools.islice(itertools.permutations(range(n)), 1, 5041)  # skip the identity; cap at 7!
    cands = [render_caption(subject, [steps[i] for i in p], templates) for p in perms]
    return _pick(cands, pos, k, seed)


def _pick(cands: list[str], positive: str, k: int, seed: int) -> list[str]:
    uniq = list(dict.fromkeys(c for c in cands if c != positive))
    if len(uniq) <= k:
        return uniq
    rng = np.random.default_rng(seed)
    return [uniq[i] for i in sorted(rng.choice(len(uniq), size=k, replace=False))]
