"""`index_dataset(cfg)`: one dataset root -> the project's clip index (see envs/datasets/common.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from configs.loader import to_dict
from configs.runs import atomic_write_json
from envs.datasets import DATASETS
from envs.datasets.bridge import BridgeOptions
from envs.datasets.charades_ego import CharadesEgoOptions
from envs.datasets.common import Report, write_dataset
from envs.datasets.ego_exo4d import EgoExo4DOptions
from envs.datasets.ntu120 import NTU120Options
from envs.datasets.rh20t import RH20TOptions
from envs.datasets.ssv2 import SSv2Options

KINDS = ("ego_exo4d", "ssv2", "rh20t", "bridge", "charades_ego", "ntu120")


@dataclasses.dataclass
class IndexConfig:
    kind: str = ""  # one of KINDS
    root: str = ""  # the dataset as downloaded
    out: str = ""  # output folder (index.parquet, meta.json, report.json, clips/, items/)
    frames: int = 16  # frames per clip-view
    size: int = 96  # square clip size (pixels)
    resume: bool = False  # continue an interrupted run in `out`
    limit: int = 0  # index at most this many items (takes / videos / episodes); 0 = all
    progress: bool = True
    threads: int = 0  # video decoding threads (0: the cores free to this process; ATOMVLA_THREADS wins)
    ego_exo4d: EgoExo4DOptions = dataclasses.field(default_factory=EgoExo4DOptions)
    ssv2: SSv2Options = dataclasses.field(default_factory=SSv2Options)
    rh20t: RH20TOptions = dataclasses.field(default_factory=RH20TOptions)
    bridge: BridgeOptions = dataclasses.field(default_factory=BridgeOptions)
    charades_ego: CharadesEgoOptions = dataclasses.field(default_factory=CharadesEgoOptions)
    ntu120: NTU120Options = dataclasses.field(default_factory=NTU120Options)

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {list(KINDS)} (--kind)")
        if not self.root or not self.out:
            raise ValueError("'root' and 'out' are required (--root DIR --out DIR)")
        if self.frames < 1 or self.size < 8:
            raise ValueError(f"frames must be >= 1 and size >= 8, got {self.frames}, {self.size}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")


def _identity(cfg: IndexConfig) -> dict:
    """What must not change between a run and its --resume (`limit` may: index a few items, then all)."""
    return {"kind": cfg.kind, "root": str(Path(cfg.root).resolve()), "frames": cfg.frames, "size": cfg.size,
            "options": to_dict(getattr(cfg, cfg.kind))}  # fmt: skip


def index_dataset(cfg: IndexConfig) -> dict:
    """Scan `cfg.root` with the `cfg.kind` adapter, write the clip index to `cfg.out`; returns the summary."""
    cfg.validate()
    root, out = Path(cfg.root), Path(cfg.out)
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root}: no such folder")
    ident_path = out / "index_config.json"
    if out.exists() and any(out.iterdir()):
        if not cfg.resume:
            raise FileExistsError(f"{out} is not empty; pass --resume to continue it or choose another --out")
        if ident_path.is_file():
            old = json.loads(ident_path.read_text())
            diff = sorted(k for k in set(old) | set(_identity(cfg)) if old.get(k) != _identity(cfg).get(k))
            if diff:
                raise ValueError(f"--resume: {ident_path} differs from this run in {diff}; refusing to mix")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(ident_path, _identity(cfg))
    adapter = DATASETS.get(cfg.kind)(root, getattr(cfg, cfg.kind))
    report = Report()
    items = adapter.scan(report)
    if cfg.limit:
        items = items[: cfg.limit]
    from configs.threads import default_threads

    return write_dataset(
        cfg.kind, items, report, root, out, cfg.frames, cfg.size, to_dict(cfg), cfg.resume, cfg.progress,
        symmetric_pairs=adapter.symmetric_pairs, retrieval_only=adapter.retrieval_only, extra=adapter.extra,
        threads=default_threads(cfg.threads),
    )


def format_summary(s: dict, max_problems: int = 50) -> str:
    """The printed summary: kept / dropped with reasons, then one line per problem."""
    lines = [f"{s['dataset']}: {s['root']} -> {s['out']}"]
    if s.get("layout"):
        lines.append(f"  layout: {s['layout']}")
    lines += [
             f"  scanned {s['scanned']} annotations; kept {s['kept_clips']} clips ({s['kept_clip_views']} clip-views) "
             f"in {s['items']} takes; by split: " + (", ".join(f"{k}={v}" for k, v in sorted(s["kept_by_split"].items())) or "-")]  # fmt: skip
    dropped = s["dropped"]
    lines.append(f"  dropped {sum(dropped.values())}" + (":" if dropped else ""))
    lines += [f"    {n:7d}  {reason}" for reason, n in dropped.items()]
    probs = s["problems"]
    if probs:
        lines.append(f"  {len(probs)} problem(s):")
        lines += [f"    {p}" for p in probs[:max_problems]]
        if len(probs) > max_problems:
            lines.append(f"    ... {len(probs) - max_problems} more in {Path(s['out']) / 'report.json'}")
    return "\n".join(lines)
