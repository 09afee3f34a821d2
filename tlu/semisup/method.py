"""`SemiSupervised`: what the semi-supervised method files (tlu/methods/fixmatch.py, ...) share.

USB (microsoft/Semi-supervised-learning, semilearn/core/algorithmbase.py) puts the data,
the model and the loop in a base class and each algorithm overrides `train_step(x_lb,
y_lb, x_ulb_w, x_ulb_s)`. Here the house owns the loop; this base gives a method:
  - the batch layout 'labelled_unlabelled' (B labelled + mu * B unlabelled images,
    `tlu.methods.layouts`, at the ratio `unlabelled_ratio` = mu) and the config keys
    every method has:
      mu: int >= 1 (default 7, FixMatch's ratio of unlabelled to labelled images);
      unsup_weight: lambda_u >= 0, the weight of the unlabelled loss (default 1);
      weak / strong: the view specs of `tlu.semisup.views` (defaults 'flip_translate' /
        'flip_translate_strong'; 'translate' / 'translate_strong' for digits). The task's
        `augment` is not read: a semi-supervised method's views are its own;
  - one classifier head 'head' (what the house's accuracy evaluators read);
  - `weak_strong(batch, rng)`: the labelled weak view, the unlabelled weak and strong views;
  - `logits_lb_w_s`: USB's `use_cat` forward, one pass over the three (BatchNorm statistics
    of all of them), the weak logits without gradient;
  - `output(...)`: the `LossOutput` with the metrics USB logs (sup_loss, unsup_loss,
    util_ratio) and the labelled features for the online probe.
"""

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.semisup import consistency
from tlu.semisup.views import make_view

DEFAULTS = {'mu': 7, 'unsup_weight': 1.0, 'weak': 'flip_translate',
            'strong': 'flip_translate_strong'}


def setting(config, key, defaults=DEFAULTS):
  """config[key], or its default."""
  return config.get(key, defaults[key])


class SemiSupervised(Method):
  """Base of the FixMatch family, UDA, MixMatch, Mean Teacher and Pseudo-Label (not registered).

  batch: {'image': (B, H, W, C) uint8, 'label': (B,) int, 'unlabelled_image':
  (mu B, H, W, C) uint8, 'unlabelled_index': (mu B,) int32}.
  """
  inputs = 'labelled_unlabelled'
  ranges = {'mu': checks.POSITIVE_INT, 'unsup_weight': checks.NON_NEGATIVE}
  defaults = DEFAULTS   # a subclass adds its own keys' defaults

  @classmethod
  def example_config(cls):
    return {'mu': 2, 'unsup_weight': 1.0, 'weak': 'translate', 'strong': 'translate_strong'}

  @classmethod
  def check(cls, config):
    for key in ('weak', 'strong'):
      try:
        make_view(setting(config, key, cls.defaults))
      except ValueError as e:
        raise ValueError(f'method.{key}: {e}') from e

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.mu = self.unlabelled_ratio = int(self.setting('mu'))
    self.unsup_weight = float(self.setting('unsup_weight'))
    self.weak = make_view(self.setting('weak'))
    self.strong = make_view(self.setting('strong'))

  def setting(self, key):
    return setting(self.config, key, self.defaults)

  @property
  def num_unlabelled(self):
    """Examples of the unlabelled split (per-example state, indexed by 'unlabelled_index')."""
    return self.facts.num_unlabelled

  @staticmethod
  def num_classes(variables):
    """K, from the classifier head's kernel (F, K)."""
    return [x for x in jax.tree.leaves(variables['params']['head']) if x.ndim == 2][0].shape[-1]

  # ------------------------------------------------------------------ helpers for loss_fn

  def weak_strong(self, batch, rng):
    """(labelled weak (B, ...), unlabelled weak (mu B, ...), unlabelled strong), float [0, 1];
    the keys are jax.random.split(rng, 3) in that order."""
    k_lb, k_w, k_s = jax.random.split(rng, 3)
    to_float = lambda key: batch[key].astype(jnp.float32) / 255.0
    unlabelled = to_float('unlabelled_image')
    return (self.weak(k_lb, to_float('image')), self.weak(k_w, unlabelled),
            self.strong(k_s, unlabelled))

  def classify(self, params, model_state, images):
    """Training-mode forward: (logits (N, K), features (N, F), batch_stats)."""
    out, batch_stats = self.forward(params, model_state, images, ('head',))
    return out['head'], out['features'], batch_stats

  def logits_lb_w_s(self, params, model_state, batch, rng):
    """One forward over [labelled weak; unlabelled weak; unlabelled strong] (USB use_cat).

    Returns (logits_lb (B, K), logits_w (mu B, K) without gradient, logits_s (mu B, K),
    features_lb (B, F), batch_stats).
    """
    x, u_w, u_s = self.weak_strong(batch, rng)
    logits, features, batch_stats = self.classify(params, model_state,
                                                  jnp.concatenate([x, u_w, u_s]))
    b, n = x.shape[0], u_w.shape[0]
    return (logits[:b], jax.lax.stop_gradient(logits[b:b + n]), logits[b + n:],
            features[:b], batch_stats)

  def supervised_loss(self, logits_lb, batch):
    """mean CE of the labelled logits against batch['label']."""
    return jnp.mean(consistency.cross_entropy(logits_lb, batch['label']))

  def output(self, *, sup_loss, unsup_loss, batch_stats, logits_lb, features_lb, batch,
             unsup_scale=1.0, mask=None, extra=None, terms=None, metrics=None):
    """LossOutput with loss = sup + unsup_weight * unsup_scale * unsup + sum(terms.values())."""
    terms = dict(terms or {})
    loss = sup_loss + self.unsup_weight * unsup_scale * unsup_loss + sum(terms.values())
    logged = {'sup_loss': sup_loss, 'unsup_loss': unsup_loss, **terms,
              'accuracy': jnp.mean((jnp.argmax(logits_lb, -1) == batch['label'])
                                   .astype(jnp.float32)), **(metrics or {})}
    if mask is not None:
      logged['util_ratio'] = jnp.mean(mask)
    return LossOutput(loss=loss, batch_stats=batch_stats,
                      metrics=jax.lax.stop_gradient(logged),
                      outputs={'features': features_lb, 'logits': logits_lb}, extra=extra)

