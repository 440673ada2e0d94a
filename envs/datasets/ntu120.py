"""NTU RGB+D 120 (InvAct Table 2, zero-shot retrieval; STEP supplement Table 17, nearly symmetric pairs).

Layout read (the official RGB download, unpacked; names as in the dataset's README / TPAMI paper):

    <root>/nturgb+d_rgb/SsssCcccPpppRrrrAaaa_rgb.avi
        S = setup (location / background), C = camera 1-3, P = performer, R = replication, A = action 1-120

Labels come from the file name. The three cameras of one (S, P, R, A) recorded the same performance
at the same time: one take, one clip, three exo views named C001..C003 (NTU is fully exocentric).
action = the official class name (A001 "drink water" ... A120); scene = setup ("S001"); split by the
cross-subject protocol (`protocol="xsub"`: the 53 official training performers) or cross-setup
(`"xset"`: even setups train); the held-out half -> split "val". `max_action=60` keeps NTU RGB+D 60
(A001-A060, the paper's 56,880-sample version). Retrieval-only; meta.symmetric_pairs = the 9 nearly
symmetric pairs of STEP's Table 17 (sit down / stand up, put on / take off jacket, ...).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from envs.datasets import DATASETS
from envs.datasets.common import ClipSpec, Item, Report, Source, check_splits

NAME_RE = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})_rgb\.avi$")
CLASSES = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw", "sitting down",
    "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper", "wear jacket",
    "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone", "playing with phone/tablet",
    "typing on a keyboard", "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling", "touch head (headache)",
    "touch chest (stomachache/heart pain)", "touch back (backache)", "touch neck (neckache)",
    "nausea or vomiting condition", "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other", "put on headphone", "take off headphone",
    "shoot at the basket", "bounce ball", "tennis bat swing", "juggling table tennis balls", "hush (quite)",
    "flick hair", "thumb up", "thumb down", "make ok sign", "make victory sign", "staple book", "counting money",
    "cutting nails", "cutting paper (using scissors)", "snapping fingers", "open bottle", "sniff (smell)",
    "squat down", "toss a coin", "fold paper", "ball up paper", "play magic cube", "apply cream on face",
    "apply cream on hand back", "put on bag", "take off bag", "put something into a bag",
    "take something out of a bag", "open a box", "move heavy objects", "shake fist", "throw up cap/hat",
    "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person", "knock over other person (hit with body)",
    "grab other person's stuff", "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person", "follow other person",
    "whisper in other person's ear", "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)  # fmt: skip
# STEP (step_probing.txt) supplement Table 17, by NTU action number
SYMMETRIC_PAIRS_A = ((8, 9), (14, 15), (16, 17), (18, 19), (20, 21), (61, 62), (87, 88), (59, 60), (89, 90))
SYMMETRIC_PAIRS = [[CLASSES[a - 1], CLASSES[b - 1]] for a, b in SYMMETRIC_PAIRS_A]
XSUB_TRAIN = frozenset((1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50,
                        52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94,
                        95, 97, 98, 100, 103))  # fmt: skip


@dataclasses.dataclass
class NTU120Options:
    videos_dir: str = "nturgb+d_rgb"
    protocol: str = "xsub"  # "xsub" | "xset"
    splits: list[str] = dataclasses.field(default_factory=lambda: ["val"])
    max_action: int = 120  # 60: NTU RGB+D 60 only

    def validate(self) -> None:
        if self.protocol not in ("xsub", "xset"):
            raise ValueError(f"ntu120.protocol: {self.protocol!r} is not 'xsub' or 'xset'")
        if not 1 <= self.max_action <= 120:
            raise ValueError(f"ntu120.max_action must be in 1..120, got {self.max_action}")
        check_splits("ntu120", self.splits)


@DATASETS.register("ntu120")
class NTU120:
    options_cls = NTU120Options
    retrieval_only = True
    symmetric_pairs = SYMMETRIC_PAIRS

    def __init__(self, root: str | Path, opts: NTU120Options | None = None):
        self.root = Path(root)
        self.opts = opts or NTU120Options()
        self.opts.validate()
        self.extra = {"source": "NTU RGB+D 120", "protocol": self.opts.protocol,
                      "symmetric_pairs_source": "STEP (Order Matters) supplement, Table 17",
                      "symmetric_pairs_step": SYMMETRIC_PAIRS}  # all 9, also when a class is not indexed

    def scan(self, report: Report) -> list[Item]:
        o = self.opts
        report.layout = f"NTU RGB+D 120 official RGB download ({o.videos_dir}/S...C...P...R...A..._rgb.avi)"
        vdir = self.root / o.videos_dir
        if not vdir.is_dir():
            report.missing(vdir, "NTU RGB+D video folder")
            return []
        takes: dict[tuple[int, int, int, int], dict[str, str]] = {}
        for p in sorted(vdir.iterdir()):
            if p.suffix.lower() != ".avi":
                continue
            report.scanned += 1
            m = NAME_RE.match(p.name)
            if not m:
                report.malformed(p, "file name is not SsssCcccPpppRrrrAaaa_rgb.avi")
                report.drop("malformed file name")
                continue
            s, c, perf, r, a = map(int, m.groups())
            if not 1 <= a <= 120:
                report.malformed(p, f"action number A{a:03d} outside A001-A120")
                report.drop("malformed file name")
                continue
            if a > o.max_action:
                report.drop(f"action beyond A{o.max_action:03d}")
                continue
            takes.setdefault((s, perf, r, a), {})[f"C{c:03d}"] = f"{o.videos_dir}/{p.name}"
        items = []
        for (s, perf, r, a), cams in sorted(takes.items()):
            train = perf in XSUB_TRAIN if o.protocol == "xsub" else s % 2 == 0
            split = "train" if train else "val"
            if split not in o.splits:
                report.drop(f"split {split} not requested", len(cams))
                continue
            key = f"S{s:03d}P{perf:03d}R{r:03d}A{a:03d}"
            for c in range(1, 4):
                if f"C{c:03d}" not in cams:
                    report.missing(vdir / f"S{s:03d}C{c:03d}P{perf:03d}R{r:03d}A{a:03d}_rgb.avi",
                                   f"camera C{c:03d} of {key} (indexed with {len(cams)} view(s))")
            labels = {"split": split, "scene": f"S{s:03d}", "subject": "human", "action": CLASSES[a - 1],
                      "object": "", "caption": CLASSES[a - 1], "keystep_id": -1, "keystep": ""}  # fmt: skip
            items.append(Item(key=key, clips=[ClipSpec(clip_id=key, labels=labels,
                                                       views={c: Source(path=v) for c, v in sorted(cams.items())})]))
        return items
