"""Behaviour-cloning heads on frozen action encoders (roboact_clip Sec. III-C; the R3M head).

    model.py       HeadConfig + HeadNetwork: BatchNorm -> MLP(256, 256) -> action or an action chunk,
                   optionally instruction-conditioned (concat / FiLM), or a STEP-style temporal head
    data.py        the demo EpisodeDataset's windows for a head (views, proprio history, action chunk),
                   streamed frozen features (+ randomly shifted copies) in the encoders.features cache
    policy.py      EncoderHeadPolicy: the registered "policy_head" Policy
    checkpoint.py  the checkpoint folder (policy.json + head.safetensors) both head kinds write
    twin.py        TwinHeadPolicy: the twin's learned step policy ("twin_head"; its own CLI)

Training: policies/train.py. Importing this package registers "policy_head" in envs.policy_api.POLICIES.
"""

from policies.heads.model import HeadConfig, HeadNetwork
from policies.heads.policy import EncoderHeadPolicy

__all__ = ["HeadConfig", "EncoderHeadPolicy", "HeadNetwork"]
