"""L2-SP (Li, Grandvalet & Davoine 2018, ICML, "Explicit Inductive Bias for Transfer Learning
with Convolutional Networks", eq. 3): fine-tuning that stays near the source weights.

  loss = CE + alpha / 2 ||w_S - w_S^0||^2 + beta / 2 ||w_{not S}||^2

w_S are the shared layers (leaves whose `/`-joined path full-matches a regex of `shared`,
the vocabulary of the freezing spec: `backbone/.*` by default), w_S^0 their values when
training starts -- the transplanted source weights -- kept in the method state
(`extra['source']`, checkpointed); every other leaf (the new head) gets plain L2. The
paper uses it instead of weight decay (alpha = 0.1 or 0.01, beta = 0.01 on its ImageNet /
Places sources). Every shared parameter counts, BatchNorm scales and biases included, as
in TLlib's SPRegularization (`tllib/regularization/delta.py`).
"""

import re

import jax.numpy as jnp

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.supervised import Supervised
from tlu.transfer.paths import flatten, match_any, unflatten


def l2sp_terms(params, source, shared):
  """(sum over shared leaves of (w - w0)^2, sum over the other leaves of w^2) -> two scalars.

  params: the parameter tree; source: the shared leaves' starting values (a tree of the
  same paths); shared: full-match regexes of the shared leaves' paths.
  """
  start = flatten(source)
  to_source, rest = jnp.zeros(()), jnp.zeros(())
  for path, w in flatten(params).items():
    w = w.astype(jnp.float32)
    if match_any(path, shared) and path in start:
      to_source += jnp.sum(jnp.square(w - start[path]))
    else:
      rest += jnp.sum(jnp.square(w))
  return to_source, rest


@METHODS.register('l2sp')
class L2SP(Supervised):
  """Supervised cross-entropy (`tlu.methods.supervised`) plus the L2-SP penalty.

  config: Supervised's, and alpha >= 0 (pull of the shared layers to their start), beta >= 0
  (L2 of the other layers), shared: regexes of the shared layers' paths.
  Method state: extra['source'] = the shared leaves at the first step.
  """
  ranges = {'alpha': checks.NON_NEGATIVE, 'beta': checks.NON_NEGATIVE,
            'head_l2_scale': checks.NON_NEGATIVE, 'label_smoothing': checks.BELOW_ONE}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'alpha': 0.1, 'beta': 0.01, 'shared': ('backbone/.*',)}

  @classmethod
  def check(cls, config):
    shared = config.get('shared')   # the values' ranges: `ranges`
    if isinstance(shared, str) or not shared:
      raise ValueError(f'method.shared={shared!r} must be a tuple of path regexes, e.g. '
                       "('backbone/.*',)")
    for regex in shared:
      try:
        re.compile(regex)
      except re.error as e:
        raise ValueError(f'method.shared: {regex!r} is not a regex ({e})') from None

  def init_extra(self, variables, rng):
    shared = tuple(self.config.shared)
    start = {p: jnp.asarray(w, jnp.float32) for p, w in flatten(variables['params']).items()
             if match_any(p, shared)}
    if not start:
      raise ValueError(f'method.shared={shared} names no parameter of the model')
    return {**super().init_extra(variables, rng), 'source': unflatten(start)}

  def loss_fn(self, params, model_state, batch, rng):
    out = super().loss_fn(params, model_state, batch, rng)
    to_source, rest = l2sp_terms(params, model_state['extra']['source'], tuple(self.config.shared))
    metrics = {**out.metrics, 'l2sp_distance': jnp.sqrt(to_source)}
    penalty = self.config.alpha / 2 * to_source + self.config.beta / 2 * rest
    return out.replace(loss=out.loss + penalty, metrics=metrics)
