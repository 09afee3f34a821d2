"""BSS, batch spectral shrinkage (Chen, Wang, Fu, Long & Wang 2019, NeurIPS, "Catastrophic
Forgetting Meets Negative Transfer: Batch Spectral Shrinkage for Safe Transfer Learning"):
fine-tuning that shrinks the smallest singular values of each batch's feature matrix.

  loss = CE + eta * sum_{i=1}^{k} sigma_{-i}^2

sigma_{-i} is the i-th smallest singular value of the (B, F) features the head sees (the
backbone's output): the spectral components of small singular values are the ones that
carry negative transfer (the paper, section 4), so shrinking them suppresses it. The paper
and TLlib's script use k = 1, eta = 0.001 (`examples/task_adaptation/image_classification/
bss.py`; `tllib/regularization/bss.py`, BatchSpectralShrinkage). There are min(B, F)
singular values, so k must not exceed the batch size (`check_batch`).

BSP's helper (`tlu/methods/bsp.py`) penalises the k largest singular values of two matrices
(source and target); BSS needs the k smallest of one, hence its own three lines here.
"""

import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.supervised import Supervised


def batch_spectral_shrinkage(features, k=1):
  """Sum of the squares of the k smallest singular values of features (B, F) -> ()."""
  s = jnp.linalg.svd(features.astype(jnp.float32), compute_uv=False)   # descending
  if k > s.shape[0]:
    raise ValueError(f'method.bss_k={k} exceeds the {s.shape[0]} singular values of '
                     f'{features.shape[0]} x {features.shape[1]} features')
  return jnp.sum(jnp.square(s[s.shape[0] - k:]))


@METHODS.register('bss')
class BSS(Supervised):
  """Supervised cross-entropy (`tlu.methods.supervised`) plus bss_weight * L_bss(features).

  config: Supervised's, bss_weight >= 0 (eta), bss_k: an integer in [1, batch size] (k).
  """
  ranges = {**Supervised.ranges, 'bss_weight': checks.NON_NEGATIVE,
            'bss_k': checks.POSITIVE_INT}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'bss_weight': 0.001, 'bss_k': 1}

  @classmethod
  def check_batch(cls, config, batch_size):
    super().check_batch(config, batch_size)
    if config.bss_k > batch_size:
      raise ValueError(f'method.bss_k={config.bss_k} must be <= the batch size {batch_size} '
                       '(a batch has at most that many singular values)')

  def loss_fn(self, params, model_state, batch, rng):
    out = super().loss_fn(params, model_state, batch, rng)
    penalty = batch_spectral_shrinkage(out.outputs['features'], self.config.bss_k)
    return out.replace(loss=out.loss + self.config.bss_weight * penalty,
                       metrics={**out.metrics, 'bss_penalty': penalty})
