"""InvAct (invact.txt Sec. 3): model, prepared inputs, losses (Eq. 2-7), quadruplet data, training method.

Importing the package registers the `invact` encoder; `build_encoder("invact")` does it lazily.
"""

from encoders.invact.model import InvActConfig, InvActEncoder, Rope3D

__all__ = ["InvActConfig", "InvActEncoder", "Rope3D"]
