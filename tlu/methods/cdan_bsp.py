"""CDAN + BSP (Chen et al. 2019, ICML, "Transferability vs. Discriminability: Batch
Spectral Penalization for Adversarial Domain Adaptation", BSP on CDAN): the batch
spectral penalty of `tlu/methods/bsp.py` added to CDAN's loss (`tlu/methods/cdan.py`),
the combination with the paper's best results.
"""

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.bsp import BatchSpectralPenalty
from tlu.methods.cdan import CDAN


@METHODS.register('cdan_bsp')
class CDANBSP(BatchSpectralPenalty, CDAN):
  """CDAN's loss + bsp_weight * L_bsp(features_s, features_t).

  config: CDAN's and bsp_weight >= 0 (1e-4), bsp_k >= 1 (1). batch: as DANN's.
  """
  ranges = {'bsp_k': checks.POSITIVE_INT, 'bsp_weight': checks.NON_NEGATIVE, 'domain_head': checks.WIDTHS,
            'domain_weight': checks.NON_NEGATIVE, 'gamma': checks.NON_NEGATIVE}
