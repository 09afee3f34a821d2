"""Batch spectral penalization (Chen, Wang, Long & Wang, 2019, ICML, "Transferability vs.
Discriminability: Batch Spectral Penalization for Adversarial Domain Adaptation"): a
regulariser on an adversarial method, shared by tlu/methods/dann_bsp.py and cdan_bsp.py.

Adversarial alignment lets a few eigen-features with the largest singular values
dominate the features and weakens the less transferable but discriminative ones; BSP
penalises the k largest singular values of the source and target feature matrices
of each batch:
  L_bsp = sum_{i=1}^{k} (sigma_{s,i}^2 + sigma_{t,i}^2),   k = 1,
added with weight beta = 1e-4 to the method's loss (the paper; TLlib's digit runs use
1e-4, its default 2e-4). Transcribes the Transfer-Learning-Library
(`tllib/alignment/bsp.py`, BatchSpectralPenalizationLoss).

The house's composition rule: the mixin calls the paired method's loss and adds the
penalty on the features its forward pass returns in `outputs['features']` (source rows
first).
"""

import jax.numpy as jnp


def batch_spectral_penalty(f_s, f_t, k=1):
  """Sum of the squares of the k largest singular values of f_s (B, F) and of f_t (B, F) -> ()."""
  s_s = jnp.linalg.svd(f_s.astype(jnp.float32), compute_uv=False)
  s_t = jnp.linalg.svd(f_t.astype(jnp.float32), compute_uv=False)
  return jnp.sum(jnp.square(s_s[:k])) + jnp.sum(jnp.square(s_t[:k]))


class BatchSpectralPenalty:
  """Mixin before a paired method in the bases: loss = parent's loss + bsp_weight * L_bsp.

  config (added to the parent's): bsp_weight >= 0 (beta), bsp_k >= 1 (k).
  """

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'bsp_weight': 1e-4, 'bsp_k': 1}


  def loss_fn(self, params, model_state, batch, rng):
    out = super().loss_fn(params, model_state, batch, rng)
    features = out.outputs['features']
    n_s = batch['image'].shape[0]
    penalty = batch_spectral_penalty(features[:n_s], features[n_s:], self.config.bsp_k)
    return out.replace(loss=out.loss + self.config.bsp_weight * penalty,
                       metrics={**out.metrics, 'bsp_penalty': penalty})
