"""SimCLR as an objective for the generic train step (Chen et al., 2020).

Two augmented views of every image go through the backbone and the `projector`
MLP; NT-Xent (eq. 1) pulls the two projections of an image together and pushes
all other 2N - 2 projections of the global batch away. Labels are never read,
so the same objective serves any unlabeled split.
"""

import jax.numpy as jnp

from tlu.data.augment import two_views
from tlu.unsupervised.contrastive import nt_xent


def simclr(model, augment, temperature, frozen=()):
  """The SimCLR objective `loss_fn(params, model_state, batch, rng) -> (loss, aux)`.

  The two views are stacked into one (2N, H, W, C) forward pass, so BatchNorm
  normalises with statistics over both views of the global batch (SimCLR's
  global BN, Section 3 of the paper). The views are `two_views(augment, rng, x)`,
  so they are a pure function of the step key.

  Args:
    model: a `tlu.models.Model` built with `projector=(hidden, out)`.
    augment: `augment(key, images) -> images` (tlu.data.augment.make_augment).
    temperature: NT-Xent temperature tau > 0.
    frozen: top-level subtrees whose BatchNorm keeps its running averages.

  Returns:
    loss_fn for `tlu.train.step.make_train_step`. batch: {'image': (N, H, W, C)
    uint8, ...}; aux: {'batch_stats', 'metrics': nt_xent's contrastive_accuracy,
    positive_similarity, negative_similarity}.
  """
  if not model.projector:
    raise ValueError('simclr needs a model with a projector head (model.projector=(hidden, out))')

  def loss_fn(params, model_state, batch, rng):
    images = batch['image'].astype(jnp.float32) / 255.0
    view1, view2 = two_views(augment, rng, images)
    out, updates = model.apply({'params': params, 'batch_stats': model_state['batch_stats']},
                               jnp.concatenate([view1, view2]), train=True, frozen=frozen,
                               mutable=['batch_stats'])
    z1, z2 = jnp.split(out['projection'], 2)
    loss, metrics = nt_xent(z1, z2, temperature)
    return loss, {'batch_stats': updates.get('batch_stats', {}), 'metrics': metrics}

  return loss_fn
