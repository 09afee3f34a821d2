"""Batch augmentation: `make_augment` (one key per image, vmapped) and `two_views`."""

from typing import Callable

import jax
import jax.numpy as jnp

from tlu.data.augment.config import resolve_config
from tlu.data.augment.pipeline import augment_image

# augment(key, images (N, H, W, C)) -> images (N, H, W, C).
Augment = Callable[[jax.Array, jax.Array], jax.Array]


def make_augment(config) -> Augment:
  """Builds `augment(key, images) -> images` from a preset name or a config.

  Args:
    config: a name in `PRESETS`, an `AugmentConfig`, or a mapping (see
      `resolve_config`).

  Returns:
    A pure function of (key, images (N, H, W, C) float in [0, 1], C in {1, 3})
    returning augmented images of the same shape and dtype, values in [0, 1].
    Each example is augmented with its own key from `jax.random.split(key, N)`.
    The function traces under `jax.jit` (H, W, C must be static, as always).
  """
  config = resolve_config(config)

  def augment(key, images):
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError('augment expects NHWC images with 1 or 3 channels, got '
                       f'shape {images.shape}.')
    keys = jax.random.split(key, images.shape[0])
    out = jax.vmap(lambda k, x: augment_image(config, k, x))(
        keys, images.astype(jnp.float32))
    return out.astype(images.dtype)

  return augment


def two_views(augment: Augment, key, images):
  """Two independently augmented views of `images` (N, H, W, C) for SimCLR.

  Returns (view1, view2), each (N, H, W, C), from the two halves of `key`.
  """
  key1, key2 = jax.random.split(key)
  return augment(key1, images), augment(key2, images)


def views(augment, key, images):
  """The views a multi-view method trains on: a list of float arrays (N, h, w, C).

  augment: an `Augment` (two views through it) or an object with its own
  `views(key, images)` (per-view pipelines, multi-crop).
  """
  if hasattr(augment, 'views'):
    return list(augment.views(key, images))
  return list(two_views(augment, key, images))
