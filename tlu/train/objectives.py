"""Supervised objectives: cross-entropy on labelled images (optionally label-smoothed)."""

import jax.numpy as jnp
import optax


def supervised(model, label_smoothing=0.0, augment=None, frozen=()):
  """Cross-entropy objective for `make_train_step`.

  batch: {'image': (B, H, W, C) uint8, 'label': (B,) int}. `augment(key, images)`
  runs on device; `frozen` names subtrees whose BatchNorm keeps running averages.
  """

  def loss_fn(params, model_state, batch, rng):
    images = batch['image'].astype(jnp.float32) / 255.0
    if augment is not None:
      images = augment(rng, images)
    out, updates = model.apply({'params': params, 'batch_stats': model_state['batch_stats']},
                               images, train=True, frozen=frozen, mutable=['batch_stats'])
    logits = out['logits']
    labels = optax.smooth_labels(
        jnp.eye(logits.shape[-1])[batch['label']], label_smoothing) if label_smoothing else None
    if labels is None:
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    else:
      loss = optax.softmax_cross_entropy(logits, labels).mean()
    acc = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
    return loss, {'batch_stats': updates.get('batch_stats', {}), 'metrics': {'accuracy': acc}}

  return loss_fn
