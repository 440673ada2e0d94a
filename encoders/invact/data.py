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
    drawn at random among the exo cameras. A clip without an ego view (e.g. Kitchen's two static
    cameras) pairs its first view, by name, with the others.

    Mixed datasets (`weights`, one per source; the index's `dataset` column says each row's
    source): each quadruplet is drawn within one source, picked with probability `weights[k]`.
    """

    def __init__(self, index: pd.DataFrame, action_vocab: list[str], quads: int, seed: int,
                 weights: list[float] | None = None):
        self.index = index.reset_index(drop=True)
        self.quads, self.seed = quads, seed
        self.action_id = {a: i for i, a in enumerate(action_vocab)}
        scenes = sorted(set(self.index["scene"]))
        self.scene_id = {s: i for i, s in enumerate(scenes)}
        ego_mask = self.index["view"].map(is_ego).to_numpy()
        has_ego = set(self.index["clip_id"][ego_mask])
        first_view = self.index[~self.index["clip_id"].isin(has_ego)].groupby("clip_id")["view"].min().to_dict()
        self.ego_row: dict[str, int] = {}
        self.exo_rows: dict[str, list[int]] = {}
        for i, (cid, view, ego) in enumerate(zip(self.index["clip_id"], self.index["view"], ego_mask)):
            if ego or first_view.get(cid) == view:
                self.ego_row[cid] = i
            else:
                self.exo_rows.setdefault(cid, []).append(i)
        pairs = self.index["clip_id"].isin(self.exo_rows).to_numpy() & self.index.index.isin(list(self.ego_row.values()))
        clips = self.index[pairs]
        self.weights = [1.0] if weights is None else [float(w) for w in weights]
        src = clips["dataset"].to_numpy() if weights is not None else np.zeros(len(clips), int)
        self.cells: dict[tuple[str, str], list[str]] = {}
        self.source_cells: list[dict[tuple[str, str], list[str]]] = [{} for _ in self.weights]
        for cid, s, a, k in zip(clips["clip_id"], clips["scene"], clips["action"], src):
            self.cells.setdefault((s, a), []).append(cid)
            self.source_cells[int(k)].setdefault((s, a), []).append(cid)
        self.source_scenes: list[dict[str, list[str]]] = []
        self.source_anchors: list[list[str]] = []
        for k, cells in enumerate(self.source_cells):
            scenes_of: dict[str, list[str]] = {}
            for s, a in sorted(cells):
                scenes_of.setdefault(a, []).append(s)
            anchors = sorted(a for a, ss in scenes_of.items() if len(ss) >= 3)
            if not anchors and self.weights[k] > 0:
                where = "" if weights is None else f"data[{k}] (weight {self.weights[k]:.3g}): "
                raise ValueError(f"{where}quadruplet sampling needs an action seen in >= 3 scenes of the training "
                                 "split; this split has scenes per action "
                                 f"{{{', '.join(f'{a}: {len(s)}' for a, s in scenes_of.items())}}}")
            self.source_scenes.append(scenes_of)
            self.source_anchors.append(anchors)
        self.scenes_of, self.anchor_actions = self.source_scenes[0], self.source_anchors[0]
        self.captions = dict(zip(self.index["clip_id"], self.index["caption"]))
        self.actions = dict(zip(self.index["clip_id"], self.index["action"]))
        self.sources: list[int] = []  # the source of each quadruplet drawn by the last `batch` call

    def _quad(self, rng: np.random.Generator) -> list[str]:
        k = 0
        if len(self.weights) > 1:  # a single dataset keeps the RNG stream (and batches) it always had
            k = int(rng.choice(len(self.weights), p=np.asarray(self.weights)))
        self.sources.append(k)
        cells_k, scenes_of, anchors = self.source_cells[k], self.source_scenes[k], self.source_anchors[k]
        for _ in range(100):
            a1 = anchors[rng.integers(len(anchors))]
            s1, s2, s3 = rng.choice(scenes_of[a1], 3, replace=False)
            others = sorted(a for (s, a) in cells_k if s == s3 and a != a1)
            if not others:
                continue
            a2 = others[rng.integers(len(others))]
            cells = [(s1, a1), (s2, a1), (s3, a1), (s3, a2)]
            return [cells_k[c][rng.integers(len(cells_k[c]))] for c in cells]
        raise ValueError("could not draw a quadruplet: no scene holds two different actions")

    def batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, 4242, step])
        self.sources = []
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
