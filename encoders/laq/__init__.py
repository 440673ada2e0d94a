"""LAQ, LAPA's latent action quantisation: model (model.py), NSVQ codebook (nsvq.py), training method (method.py).

Importing the package registers the `laq` encoder; `build_encoder("laq")` does it lazily. The
training method registers itself when `encoders.methods.METHODS` imports `encoders.laq.method`.
"""

from encoders.laq.model import LAQConfig, LAQEncoder
from encoders.laq.nsvq import NSVQ

__all__ = ["LAQConfig", "LAQEncoder", "NSVQ"]
