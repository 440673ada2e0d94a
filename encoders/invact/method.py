"""InvAct's training method for encoders/train.py: model, cached inputs, quadruplet batches, Eq. 7."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from configs.loader import from_dict
from configs.training import rank_slice
from encoders.invact.data import QuadrupletSampler, gather
from encoders.invact.inputs import prepared_inputs
from encoders.invact.losses import InvActLossConfig, invact_loss
from encoders.invact.model import InvActConfig, InvActEncoder
from encoders.methods import register_method

if TYPE_CHECKING:
    from encoders.train import TrainConfig


@register_method("invact", model=InvActConfig, loss=InvActLossConfig)
class InvActMethod:
    """Builds the InvAct model and computes Eq. 7 on quadruplet batches."""

    def __init__(self, cfg: TrainConfig):
        from encoders.text import build_text_encoder
        from envs.atomic_world.dataset import read_meta
        from envs.datasets.mix import mix_weights

        meta = read_meta(cfg.data)
        verbs = list(meta["vocab"]["action"])
        # the verb head always matches the dataset's verb vocabulary
        self.model_cfg = from_dict(InvActConfig, {**cfg.model, "num_verbs": len(verbs)}, source="model")
        self.loss_cfg = from_dict(InvActLossConfig, cfg.loss, source="loss")
        torch.manual_seed(cfg.seed)
        self.model = InvActEncoder(self.model_cfg)
        self.index, self.arrays = prepared_inputs(self.model, cfg.data, "train", cache_root=cfg.cache_dir or None)
        self.sampler = QuadrupletSampler(self.index, verbs, cfg.batch_quads, cfg.seed, weights=mix_weights(cfg.data))
        texts = sorted(set(self.index["caption"])) + verbs
        need_text = self.loss_cfg.lambda_text > 0
        if need_text:
            enc = build_text_encoder(cfg.text_encoder)
            emb = enc.encode(texts)
            if emb.shape[1] != self.model_cfg.text_dim:
                raise ValueError(f"text encoder {cfg.text_encoder!r} gives {emb.shape[1]}-d embeddings but "
                                 f"model.text_dim is {self.model_cfg.text_dim}")
            self.text = {s: emb[i] for i, s in enumerate(texts)}
        self.verbs = verbs

    def loss(self, model, step: int, device, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        # data parallel: the global batch of `step` is split by whole quadruplets, so every rank keeps
        # the [S1A1, S2A1, S3A1, S3A2] layout the losses rely on
        b = self.sampler.batch(step).quads(rank_slice(self.sampler.quads, rank, world))
        n = len(b.ego)
        g_in, x_in = gather(self.arrays, b.ego), gather(self.arrays, b.exo)
        inputs = {k: torch.cat([g_in[k], x_in[k]]).to(device) for k in g_in}
        z = model.forward_inputs(inputs)
        g, x = z[:n], z[n:]
        t = None
        if self.loss_cfg.lambda_text:
            keys = b.caption if self.loss_cfg.text_target == "atom" else [self.verbs[a] for a in b.action]
            t = model.text_proj(torch.stack([self.text[k] for k in keys]).to(device))
        logits = model.verb_head(z) if self.loss_cfg.lambda_ce else None
        action = torch.from_numpy(b.action).to(device)
        scene = torch.from_numpy(b.scene).to(device)
        return invact_loss(self.loss_cfg, g, x, t, None if logits is None else logits[:n],
                           None if logits is None else logits[n:], action, scene)  # fmt: skip

    def export(self, model, out) -> None:
        model.save_pretrained(out / "encoder")
