"""The forward pass of a paired batch (labelled source + unlabelled target images).

Shared by the paired adaptation methods (CDAN, DAN, JAN, MCC, MDD, AFN): each needs
the features and head outputs of both domains from one training step, with one of
two ways to treat BatchNorm (the `batch_norm` key of their config, as DANN's):
  'joint'       one pass on the concatenated (B_s + B_t) batch: statistics of the
                mixture, as the Transfer-Learning-Library's training scripts do;
  'per_domain'  one pass per domain, each normalised by its own batch statistics
                (DSBN's statistics, Chang et al. 2019, scale and shift shared); the
                running averages follow the target batches (AdaBN; Li et al. 2017).
"""

import jax.numpy as jnp
import optax

BATCH_NORM = ('joint', 'per_domain')


def check_batch_norm(config):
  if config.batch_norm not in BATCH_NORM:
    raise ValueError(f'method.batch_norm={config.batch_norm!r}; use one of {BATCH_NORM}')


def forward(method, params, model_state, batch, rng, heads=('head',)):
  """Both domains through `method`'s model in training mode.

  batch: {'image': (B, H, W, C) uint8 source, 'target_image': (B, H, W, C) uint8}; the
  method's augmentation (if any) is applied to the concatenated images with one key.
  Returns (source outputs, target outputs, updated batch_stats); outputs are
  {'features': (B, F), <each head>: (B, ...)}.
  """
  source = batch['image'].astype(jnp.float32) / 255.0
  target = batch['target_image'].astype(jnp.float32) / 255.0
  n_s = source.shape[0]
  images = jnp.concatenate([source, target])
  if method.augment is not None:
    images = method.augment(rng, images)
  if method.config.batch_norm == 'joint':
    out, batch_stats = method.forward(params, model_state, images, heads)
    return ({k: v[:n_s] for k, v in out.items()}, {k: v[n_s:] for k, v in out.items()},
            batch_stats)
  out_s, _ = method.forward(params, model_state, images[:n_s], heads)
  out_t, batch_stats = method.forward(params, model_state, images[n_s:], heads)
  return out_s, out_t, batch_stats


def source_terms(logits, labels):
  """(mean cross-entropy (), accuracy ()) of source logits (B, K) against labels (B,)."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return ce, jnp.mean(jnp.argmax(logits, -1) == labels)


def outputs(out_s, out_t):
  """`LossOutput.outputs` of a paired method: features of both domains (source rows first,
  as DANN's) and the source logits; regularisers (BSP) read the features from here."""
  return {'features': jnp.concatenate([out_s['features'], out_t['features']]),
          'head': out_s['head']}
