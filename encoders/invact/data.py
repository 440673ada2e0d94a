"""InvAct training data: the quadruplet batch sampler (invact.txt App. B.1) and batch gathering."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from envs.atomic_world.dataset import is_ego


@dataclass
class Batch:
    """One minibatch of N ego-exo pairs, N = 4 * quads, in quadruplet layout order."""

    ego: np.ndarray  # (N,) row indices into the split's index
    exo: np.ndarray  # (N,)
    action: np.ndarray  # (N,) verb ids
    scene: np.ndarray  # (N,) scene ids
    caption: list[str]

    def quads(self, part: slice) -> Batch:
        """The quadruplets `part` of this batch (each quadruplet is 4 consecutive pairs)."""
        rows = slice(4 * part.start, 4 * part.stop)
        return Batch(self.ego[rows], self.exo[rows], self.action[rows], self.scene[rows], self.caption[rows])


class QuadrupletSampler:
    """Minibatches of quadruplets [S1A1, S2A1, S3A1, S3A2] (App. B.1), each cell an ego-exo pair.

    A and S are re-drawn for every quadruplet; the draw for step s depends only on (seed, s), so a
    resumed run sees exactly the batches an uninterrupted run would. The exo view of each pair is
    drawn at random among the exo cameras.
    """

    def __init__(self, index: pd.DataFrame, action_vocab: list[str], quads: int, seed: int):
        self.index = index.reset_index(drop=True)
        self.quads, self.seed = quads, seed
        self.action_id = {a: i for i, a in enumerate(action_vocab)}
        scenes = sorted(set(self.index["scene"]))
        self.scene_id = {s: i for i, s in enumerate(scenes)}
        ego_mask = self.index["view"].map(is_ego).to_numpy()
        self.ego_row: dict[str, int] = {}
        self.exo_rows: dict[str, list[int]] = {}
        for i, (cid, ego) in enumerate(zip(self.index["clip_id"], ego_mask)):
            if ego:
                self.ego_row[cid] = i
            else:
                self.exo_rows.setdefault(cid, []).append(i)
        clips = self.index[ego_mask & self.index["clip_id"].isin(self.exo_rows).to_numpy()]
        self.cells: dict[tuple[str, str], list[str]] = {}
        for cid, s, a in zip(clips["clip_id"], clips["scene"], clips["action"]):
            self.cells.setdefault((s, a), []).append(cid)
        self.scenes_of: dict[str, list[str]] = {}
        for s, a in sorted(self.cells):
            self.scenes_of.setdefault(a, []).append(s)
        self.anchor_actions = sorted(a for a, ss in self.scenes_of.items() if len(ss) >= 3)
        if not self.anchor_actions:
            raise ValueError("quadruplet sampling needs an action seen in >= 3 scenes of the training split; "
                             f"this split has scenes per action {{{', '.join(f'{a}: {len(s)}' for a, s in self.scenes_of.items())}}}")
        self.captions = dict(zip(self.index["clip_id"], self.index["caption"]))
        self.actions = dict(zip(self.index["clip_id"], self.index["action"]))

    def _quad(self, rng: np.random.Generator) -> list[str]:
        for _ in range(100):
            a1 = self.anchor_actions[rng.integers(len(self.anchor_actions))]
            s1, s2, s3 = rng.choice(self.scenes_of[a1], 3, replace=False)
            others = sorted(a for (s, a) in self.cells if s == s3 and a != a1)
            if not others:
                continue
            a2 = others[rng.integers(len(others))]
            cells = [(s1, a1), (s2, a1), (s3, a1), (s3, a2)]
            return [self.cells[c][rng.integers(len(self.cells[c]))] for c in cells]
        raise ValueError("could not draw a quadruplet: no scene holds two different actions")

    def batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, 4242, step])
        cids = [cid for _ in range(self.quads) for cid in self._quad(rng)]
        exo = [self.exo_rows[c][rng.integers(len(self.exo_rows[c]))] for c in cids]
        return Batch(
            ego=np.array([self.ego_row[c] for c in cids]),
            exo=np.array(exo),
            action=np.array([self.action_id[self.actions[c]] for c in cids]),
            scene=np.array([self.scene_id[self.index.at[self.ego_row[c], "scene"]] for c in cids]),
            caption=[self.captions[c] for c in cids],
        )


def gather(arrays: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, torch.Tensor]:
    """Rows of memory-mapped prepared inputs as tensors (sorted reads, original order restored)."""
    order = np.argsort(rows)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return {n: torch.from_numpy(np.asarray(a[rows[order]])[inv]) for n, a in arrays.items()}
