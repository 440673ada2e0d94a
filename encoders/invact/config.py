"""InvAct's constructor config (invact.txt Table 4, CPU-sized defaults; see `encoders/invact/model.py`).

A leaf module: `model.py` (the encoder) and `inputs.py` (the prepared inputs the model consumes) both
read the config, so it lives apart from either of them. `encoders.invact.model` and `encoders.invact`
re-export `InvActConfig`.
"""

from __future__ import annotations

import dataclasses

MODALITIES = ("flow", "rgb", "rgb+flow", "backbone+flow")


@dataclasses.dataclass
class InvActConfig:
    frames: int = 8  # T frames sampled per clip -> T-1 flow maps
    flow_size: int = 32  # flow / RGB tubelet input resolution S (multiple of `patch`)
    flow_method: str = "dis"
    patch: int = 8  # spatial tubelet size (paper: 8x8)
    tubelet_t: int = 3  # temporal kernel of the 3D conv (stride 1, padded: keeps T-1 positions)
    dim: int = 64  # d: token width and embedding size (paper: 256)
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    modality: str = "backbone+flow"
    backbone: str = "efficientnet_lite0"  # D(v): any backbone registry spec, e.g. hf:/path/to/dinov2
    backbone_size: int = 96
    rope_base: float = 100.0  # positions are small integers; a low base spreads the frequencies over them
    num_verbs: int = 12  # size of the verb head h (Eq. 6)
    text_dim: int = 384  # width of the frozen text embedding (MiniLM: 384)

    def validate(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"invact.modality: {self.modality!r} is not one of {MODALITIES}")
        if self.flow_size % self.patch:
            raise ValueError(f"invact.flow_size ({self.flow_size}) must be a multiple of patch ({self.patch})")
        if self.frames < 2:
            raise ValueError(f"invact.frames must be >= 2, got {self.frames}")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"invact.dim ({self.dim}) / heads ({self.heads}) must be an even integer")

    @property
    def uses_flow(self) -> bool:
        return "flow" in self.modality

    @property
    def uses_rgb(self) -> bool:
        return self.modality in ("rgb", "rgb+flow")

    @property
    def uses_backbone(self) -> bool:
        return self.modality == "backbone+flow"
