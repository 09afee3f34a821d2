"""DANN + BSP (Chen, Wang, Long & Wang, 2019, ICML, "Transferability vs. Discriminability:
Batch Spectral Penalization for Adversarial Domain Adaptation"): the batch spectral penalty
of `tlu/methods/bsp.py` added to DANN's loss. TLlib's script (`examples/.../bsp.py`) first
trains the classifier on the source for 3 epochs; here the adaptation starts from scratch
like DANN's.
"""

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.bsp import BatchSpectralPenalty
from tlu.methods.dann import DANN


@METHODS.register('dann_bsp')
class DANNBSP(BatchSpectralPenalty, DANN):
  """DANN's loss (`tlu.methods.dann`) + bsp_weight * L_bsp(features_s, features_t).

  config: DANN's and bsp_weight, bsp_k. batch: as DANN's.
  """
  ranges = {'bsp_k': checks.POSITIVE_INT, 'bsp_weight': checks.NON_NEGATIVE, 'domain_head': checks.WIDTHS,
            'domain_weight': checks.NON_NEGATIVE, 'gamma': checks.NON_NEGATIVE}
