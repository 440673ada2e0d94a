"""RoboAct-CLIP's training method for encoders/train.py: cached frozen features, batches, Eq. 27.

    accelerate launch encoders/train.py --config configs/encoder/roboact_clip.yaml

Training text per clip (Eq. 1) is Algorithm 1's description composed from the clip's
(subject, action, object) labels ("Robot push red cube. Action is push, Object is red cube.");
Eq. 19's recombination texts are "s a the o, action is a" for every valid triplet M (the distinct
triplets of the training split). Frozen frame and text features are computed once and cached.
Batch `step` is drawn from an RNG seeded by (seed, step) only, so `--resume` sees the same data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from configs.loader import from_dict
from configs.training import rank_slice
from encoders.methods import register_method
from encoders.roboact.losses import (
    RoboActLossConfig,
    aux_classification_loss,
    clip_loss,
    disentanglement_loss,
    l2_loss,
    orthogonality_loss,
    recombination_loss,
    total_loss,
)
from encoders.roboact.model import RoboActConfig, RoboActEncoder
from envs.datasets.annotations import compose_description, recombination_text
from envs.datasets.mix import draw_rows, mix_weights

if TYPE_CHECKING:
    from encoders.train import TrainConfig


def dataset_vocab(root) -> dict[str, list[str]]:
    from envs.atomic_world.dataset import read_meta

    vocab = read_meta(root).get("vocab", {})
    missing = [k for k in ("subject", "action", "object") if not vocab.get(k)]
    if missing:
        raise ValueError(f"{root}/meta.json: vocab is missing {missing} (RoboAct-CLIP needs subject/action/object labels)")
    return {k: list(vocab[k]) for k in ("subject", "action", "object")}


def label_ids(index, vocab: dict[str, list[str]], source: str = "index") -> dict[str, np.ndarray]:
    """`{factor: (M,) int64}` class ids of every row; an unknown label raises naming the row."""
    out = {}
    for f in ("subject", "action", "object"):
        lut = {v: i for i, v in enumerate(vocab[f])}
        vals = index[f].tolist()
        bad = [i for i, v in enumerate(vals) if v not in lut]
        if bad:
            raise ValueError(f"{source}: row {bad[0]} has {f}={vals[bad[0]]!r}, not in the vocabulary {vocab[f]}")
        out[f] = np.array([lut[v] for v in vals], np.int64)
    return out


@register_method("roboact_clip", model=RoboActConfig, loss=RoboActLossConfig)
class RoboActMethod:
    """Builds the RoboAct-CLIP model and computes Eq. 27 on random batches of training clips."""

    def __init__(self, cfg: TrainConfig):
        from encoders.text import build_text_encoder

        self.cfg = cfg
        vocab = dataset_vocab(cfg.data)
        self.vocab = vocab
        model_over = dict(cfg.model)
        if "text_encoder" not in model_over:
            model_over["text_encoder"] = cfg.text_encoder
        probe = from_dict(RoboActConfig, {**model_over, "subjects": vocab["subject"], "actions": vocab["action"],
                                          "objects": vocab["object"]}, source="model")  # fmt: skip
        self.loss_cfg = from_dict(RoboActLossConfig, cfg.loss, source="loss")
        self.batch_size = self.loss_cfg.batch_size or 8 * cfg.batch_quads
        # data: frozen frame features at the model's n frames, labels, texts
        torch.manual_seed(cfg.seed)
        tmp = RoboActEncoder(probe)
        self.index, feats = tmp.dataset_features(cfg.data, "train", cache_root=cfg.cache_dir or None)
        if len(self.index) < 2:
            raise ValueError(f"{cfg.data}: the train split has {len(self.index)} clips; need at least 2")
        self.labels = label_ids(self.index, vocab, source=f"{cfg.data}/index.parquet")
        self.mix = mix_weights(cfg.data)  # source weights of a mix folder (envs/datasets/mix.py), else None
        trip = np.stack([self.labels["subject"], self.labels["action"], self.labels["object"]], 1)
        self.triplets, self.clip_triplet = np.unique(trip, axis=0, return_inverse=True)
        self.clip_triplet = self.clip_triplet.reshape(-1)
        self.model_cfg = from_dict(RoboActConfig, {**model_over, "subjects": vocab["subject"], "actions": vocab["action"],
                                                   "objects": vocab["object"], "n_triplets": len(self.triplets),
                                                   "feature_dim": tmp.feature_dim}, source="model")  # fmt: skip
        torch.manual_seed(cfg.seed)
        self.model = RoboActEncoder(self.model_cfg)
        self.model.hold_frozen("backbone", tmp.backbone())  # reuse the frozen backbone
        self.model.triplets.copy_(torch.from_numpy(self.triplets))
        f = torch.from_numpy(feats.frozen)  # the frozen features; pixel options' small frames stay uint8 in `feats`
        self.model.feat_mean.copy_(f.mean((0, 1)))
        self.model.feat_std.copy_(f.std((0, 1)).clamp(min=1e-3))
        self.feats = feats
        scenes = sorted(set(self.index["scene"]))
        self.scene_id = torch.tensor(self.index["scene"].map({s: i for i, s in enumerate(scenes)}).to_numpy(), dtype=torch.long)
        # per-scene mean feature (n frames averaged too): the scene prototypes of `loss.scene_swap`
        self.scene_mu = torch.stack([f[self.scene_id == i].mean((0, 1)) for i in range(len(scenes))])
        names = [(vocab["subject"][s], vocab["action"][a], vocab["object"][o]) for s, a, o in self.triplets]
        enc = build_text_encoder(self.model_cfg.text_encoder)
        desc = enc.encode([compose_description(*n) for n in names])  # Eq. 1 text per triplet (Algorithm 1)
        rec = enc.encode([recombination_text(*n) for n in names])  # Eq. 19
        if desc.shape[1] != self.model_cfg.text_dim:
            raise ValueError(f"text encoder {self.model_cfg.text_encoder!r} gives {desc.shape[1]}-d embeddings but "
                             f"model.text_dim is {self.model_cfg.text_dim}")
        self.model.hold_frozen("text", enc)
        self.desc_text, self.recomb_text = desc, rec
        self.triplet_names = names

    def batch(self, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """Row indices of this rank's part of batch `step` (depends on (seed, step, rank, world) only)."""
        rng = np.random.default_rng([self.cfg.seed, step])
        n = len(self.index)
        if self.mix is not None:  # mixed datasets: each slot's source drawn by its weight
            rows = draw_rows(rng, self.index["dataset"].to_numpy(), self.mix, min(self.batch_size, n))
        else:
            rows = rng.choice(n, size=min(self.batch_size, n), replace=False)
        return rows[rank_slice(len(rows), rank, world)]

    def batch_inputs(self, step: int, rank: int = 0, world: int = 1) -> tuple[np.ndarray, torch.Tensor]:
        """(rows, frozen frame features `(N, n, C)`) of this rank's part of batch `step`, with the
        optional scene swap (drawn for the whole batch, then sliced, so it is rank-independent)."""
        lc = self.loss_cfg
        full = self.batch(step)
        part = rank_slice(len(full), rank, world)
        rows = full[part]
        if self.model.pixels and (lc.motion_shift or lc.motion_brightness or lc.motion_tint):
            x = self.jittered_rows(rows, step, part, len(full))
        else:
            x = torch.from_numpy(self.feats[rows])
        if lc.scene_swap > 0 and len(self.scene_mu) > 1:  # frozen columns only: independent of the jitter
            rng = np.random.default_rng([self.cfg.seed, step, 2])
            own = self.scene_id[rows]
            other = torch.from_numpy(rng.integers(0, len(self.scene_mu) - 1, size=len(full))[part])
            other = other + (other >= own).long()  # a different scene
            swap = torch.from_numpy((rng.random(len(full)) < lc.scene_swap)[part])
            shift = (self.scene_mu[other] - self.scene_mu[own]) * swap[:, None].float()
            x = torch.cat([x[..., : shift.shape[-1]] + shift[:, None, :], x[..., shift.shape[-1] :]], -1)
        return rows, x

    def jitter_draws(self, step: int, part: slice, n: int) -> tuple[torch.Tensor, np.ndarray]:
        """The jitter of batch `step`'s clips `part` (of `n`): gains `(N, 1 or 3, 1, 1)` float32 (one
        brightness gain, times a gain per colour channel with `motion_tint`) and shifts `(N, 2)` (dy, dx)
        in the motion frames' pixels."""
        lc = self.loss_cfg
        rng = np.random.default_rng([self.cfg.seed, step, 3])
        gain = (1 + lc.motion_brightness * rng.uniform(-1, 1, n))[part]
        shift = rng.integers(-lc.motion_shift, lc.motion_shift + 1, (n, 2))[part]
        g = torch.from_numpy(gain).float()[:, None, None, None]
        if lc.motion_tint:  # drawn after the others, so a run without it keeps its old draws
            g = g * torch.from_numpy(1 + lc.motion_tint * rng.uniform(-1, 1, (n, 3))[part]).float()[:, :, None, None]
        return g, shift

    def jittered_rows(self, rows: np.ndarray, step: int, part: slice, n: int) -> torch.Tensor:
        """Frame rows `(N, n, C + P)` of `rows` with their small frames augmented per clip (as the
        motion probe does): `jitter_draws`' gain and one circular shift (scaled to each block's size)
        for all frames of a clip, so its differences stay motion. The shift is done on the uint8
        frames and the rows are joined once, into one buffer (the same values as shifting the joined
        float rows, at a fraction of the memory traffic: this was half of a training step)."""
        m, c = self.model, self.model.feature_dim
        g, shift = self.jitter_draws(step, part, n)
        frozen, pixels = self.feats.parts(rows)
        out = torch.empty(len(rows), frozen.shape[1], self.feats.shape[2])
        out[..., :c] = torch.from_numpy(frozen)
        ref = m.cfg.motion_size if m.cfg.motion == "diff" else m.cfg.object_size
        for (name, sl), block in zip(m.pixel_slices().items(), pixels):
            s = m.pixel_sizes[name]
            k = s / ref  # the shift is drawn in the motion frames' pixels
            pix = torch.from_numpy(block).reshape(len(rows), -1, 3, s, s)
            dst = out[..., sl].unflatten(-1, (3, s, s))  # a view into `out`
            for i, (dy, dx) in enumerate(shift):
                dst[i] = torch.roll(pix[i], (round(dy * k), round(dx * k)), (-2, -1))
            dst.mul_(g[:, None]).clamp_(0, 255)
        return out

    def loss(self, model, step: int, device, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        lc = self.loss_cfg
        raw = model
        rows, x = self.batch_inputs(step, rank, world)
        x = x.to(device)
        y = {f: torch.from_numpy(self.labels[f][rows]).to(device) for f in ("subject", "action", "object")}
        out = raw.forward_features(x)
        # Eq. 26 over the distinct descriptions of the batch
        uniq, text_id = np.unique(self.clip_triplet[rows], return_inverse=True)
        ft = raw.text_branches(self.desc_text[uniq].to(device))
        l_clip = clip_loss(out["embedding"], ft, torch.from_numpy(text_id.reshape(-1)).to(device), lc.tau)
        zero = out["embedding"].sum() * 0.0
        terms = {"clip": float(l_clip.detach())}
        l_disent = zero
        if raw.cfg.disentangle:
            sub, act, obj = out["subject"], out["action"], out["object"]
            l_sim = orthogonality_loss(sub, act, obj, lc.sim_abs)  # Eq. 13
            l_l2 = l2_loss(sub, act, obj, lc.l2_weight)  # Eq. 14
            l_rec = zero
            if raw.training and torch.is_grad_enabled() and step % lc.bank_every == 0:
                raw.update_banks({"subject": sub, "action": act, "object": obj}, y, lc.bank_momentum)
            if lc.lambda_recomb > 0:
                l_rec = self.recombination(raw, out, y, step, device)  # Eq. 18-20
                terms["recomb"] = float(l_rec.detach())
            l_disent = disentanglement_loss(l_sim, l_l2, l_rec, lc.lambda_ortho, lc.lambda_recomb)  # Eq. 21
            terms.update(sim=float(l_sim.detach()), l2=float(l_l2.detach()))
        l_aux = zero
        if lc.lambda_aux > 0:
            logits = {f: out[f"logits_{f}"] for f in ("subject", "action", "object")}
            l_aux = aux_classification_loss(logits, y, {"subject": lc.alpha_s, "action": lc.alpha_a, "object": lc.alpha_o})
            terms["aux"] = float(l_aux.detach())
            with torch.no_grad():
                terms["acc_action"] = float((logits["action"].argmax(-1) == y["action"]).float().mean())
        loss = total_loss(l_clip, l_disent, l_aux, lc.lambda_disent, lc.lambda_aux)  # Eq. 27
        return loss, terms

    def recombination(self, raw, out, y, step: int, device) -> torch.Tensor:
        """Eq. 18-20: N triplets drawn from M; bank entries (live batch means where the class is in the
        batch) -> recombination MLP; contrasted against all M templated texts (Eq. 19)."""
        n = out["embedding"].shape[0]
        rng = np.random.default_rng([self.cfg.seed, step, 1])
        pick = torch.from_numpy(rng.integers(0, len(self.triplets), size=n)).to(device)
        trip = raw.triplets.to(device)[pick]  # (N, 3) class ids
        parts = [raw.bank_or_batch(f, out[f], y[f], trip[:, i]) for i, f in enumerate(("subject", "action", "object"))]
        f_rec = raw.recomb(torch.cat(parts, dim=-1))
        t_all = raw.text_branches(self.recomb_text.to(device))
        return recombination_loss(f_rec, t_all, pick, self.loss_cfg.tau)

    def export(self, model, out) -> None:
        model.save_pretrained(out / "encoder")
