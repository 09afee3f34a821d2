"""RandAugment as FixMatch uses it (Sohn et al. 2020, Appendix Table 12; USB's
`semilearn/datasets/augmentation/randaugment.py`), on device, one image per key.

Each image draws `num_ops` ops from the 14 below with replacement (USB's
`random.choices`) and, for each, a magnitude v ~ U(lo, hi) (FixMatch's "RA with random
magnitude"; no global magnitude M), applied in order with Pillow's semantics
(`tlu.data.augment.pil_ops`). USB's ranges:

  op             v in          meaning
  AutoContrast   -             per-channel stretch to [0, 255]
  Brightness     [0.05, 0.95]  ImageEnhance factor
  Color          [0.05, 0.95]  ImageEnhance factor
  Contrast       [0.05, 0.95]  ImageEnhance factor
  Equalize       -             histogram equalisation
  Identity       -
  Posterize      [4, 8]        int(v) bits kept
  Rotate         [-30, 30]     degrees, counter-clockwise
  Sharpness      [0.05, 0.95]  ImageEnhance factor
  ShearX, ShearY [-0.3, 0.3]   shear coefficient
  Solarize       [0, 256]      threshold
  TranslateX     [-0.3, 0.3]   fraction of the width
  TranslateY     [-0.3, 0.3]   fraction of the height

Cutout follows in USB's RandAugment (`tlu.data.augment.cutout`). Images here are float
in [0, 1] (tlu's convention); they are rounded to Pillow's 256 levels on entry, and each
op returns levels, as Pillow's uint8 images do. `random_shift` is FixMatch's weak
translation (reflect-padded random crop by whole pixels).
"""

import jax
import jax.numpy as jnp

from tlu.data.augment import pil_ops

# (name, fn(levels (H, W, C), v) -> levels, lo, hi), USB's `augment_list()` order.
OPS = (
    ('AutoContrast', lambda x, v: pil_ops.autocontrast(x), 0.0, 1.0),
    ('Brightness', pil_ops.brightness, 0.05, 0.95),
    ('Color', pil_ops.color, 0.05, 0.95),
    ('Contrast', pil_ops.contrast, 0.05, 0.95),
    ('Equalize', lambda x, v: pil_ops.equalize(x), 0.0, 1.0),
    ('Identity', lambda x, v: x, 0.0, 1.0),
    ('Posterize', lambda x, v: pil_ops.posterize(x, jnp.maximum(1.0, jnp.floor(v))), 4.0, 8.0),
    ('Rotate', pil_ops.rotate, -30.0, 30.0),
    ('Sharpness', pil_ops.sharpness, 0.05, 0.95),
    ('ShearX', pil_ops.shear_x, -0.3, 0.3),
    ('ShearY', pil_ops.shear_y, -0.3, 0.3),
    ('Solarize', pil_ops.solarize, 0.0, 256.0),
    ('TranslateX', lambda x, v: pil_ops.translate_x(x, v * x.shape[1]), -0.3, 0.3),
    ('TranslateY', lambda x, v: pil_ops.translate_y(x, v * x.shape[0]), -0.3, 0.3),
)
OP_NAMES = tuple(name for name, _, _, _ in OPS)


def to_levels(image):
  """Float image in [0, 1] -> float32 integer levels 0..255 (round to nearest)."""
  return jnp.round(jnp.clip(image.astype(jnp.float32), 0.0, 1.0) * 255.0)


def apply_op(index, image, v):
  """OPS[index] (traced int) with magnitude v on (H, W, C) levels -> levels."""
  branches = [lambda x, m, fn=fn: fn(x, m) for _, fn, _, _ in OPS]
  return jax.lax.switch(index, branches, image, v)


def sample_policy(key, num_ops):
  """The ops and magnitudes of one image: (indices (num_ops,) int32, v (num_ops,) float32).

  Indices uniform over the 14 ops with replacement; v = lo + (hi - lo) * U(0, 1).
  """
  k_op, k_mag = jax.random.split(key)
  indices = jax.random.randint(k_op, (num_ops,), 0, len(OPS))
  lows = jnp.array([lo for _, _, lo, _ in OPS], jnp.float32)
  highs = jnp.array([hi for _, _, _, hi in OPS], jnp.float32)
  u = jax.random.uniform(k_mag, (num_ops,))
  return indices, lows[indices] + (highs[indices] - lows[indices]) * u


def rand_augment(key, image, num_ops=2):
  """RandAugment of one float image (H, W, C) in [0, 1] -> (H, W, C) float32 in [0, 1].

  The ops and magnitudes are `sample_policy(key, num_ops)`'s.
  """
  indices, magnitudes = sample_policy(key, num_ops)
  levels = to_levels(image)
  for i in range(num_ops):
    levels = apply_op(indices[i], levels, magnitudes[i])
  return levels / 255.0


def random_shift(key, image, max_frac):
  """FixMatch's weak translation: pad by p = round(max_frac * side) pixels with reflection
  (torchvision `RandomCrop(size, padding=p, padding_mode='reflect')`) and crop back at a
  uniform integer offset in [0, 2p] along each axis. (H, W, C) -> (H, W, C)."""
  height, width = image.shape[0], image.shape[1]
  pad_y, pad_x = round(max_frac * height), round(max_frac * width)
  if pad_y == 0 and pad_x == 0:
    return image
  padded = jnp.pad(image, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode='reflect')
  k_y, k_x = jax.random.split(key)
  top = jax.random.randint(k_y, (), 0, 2 * pad_y + 1)
  left = jax.random.randint(k_x, (), 0, 2 * pad_x + 1)
  return jax.lax.dynamic_slice(padded, (top, left, 0), image.shape)


def strong_view(spec='randaugment'):
  """FixMatch's strong view: augment(key, images (N, H, W, C) float [0, 1]) -> same shape.

  Per image, with its own key: a horizontal flip with probability 1/2 (`flip`), the weak
  translation `random_shift(translate)`, `rand_augment(num_ops)`, then Cutout of up to
  `cutout` of the side (`tlu.data.augment.cutout`; 0: none). spec: 'randaugment' (FixMatch's
  defaults: flip=True, translate=0.125, num_ops=2, cutout=0.5) or a mapping with
  name='randaugment' and any of those keys (flip=False for digits).
  """
  from tlu.data.augment import cutout as cutout_lib  # pylint: disable=import-outside-toplevel
  options = {'flip': True, 'translate': 0.125, 'num_ops': 2, 'cutout': 0.5}
  given = {} if isinstance(spec, str) else {k: v for k, v in dict(spec).items() if k != 'name'}
  unknown = sorted(set(given) - set(options))
  if unknown:
    raise ValueError(f'randaugment keys {unknown} unknown; use {sorted(options)}')
  options.update(given)
  if (int(options['num_ops']) != options['num_ops'] or options['num_ops'] < 1
      or not 0 <= options['translate'] <= 0.5 or not 0 <= options['cutout'] <= 1):
    raise ValueError(f'randaugment {options}: num_ops an integer >= 1, translate in '
                     '[0, 0.5], cutout in [0, 1]')
  num_ops = int(options['num_ops'])

  def one(key, image):
    k_flip, k_shift, k_ra, k_cut = jax.random.split(key, 4)
    if options['flip']:
      image = jnp.where(jax.random.bernoulli(k_flip), image[:, ::-1], image)
    image = random_shift(k_shift, image, options['translate'])
    image = rand_augment(k_ra, image, num_ops)
    if options['cutout']:
      image = cutout_lib.cutout(k_cut, image, options['cutout'])
    return image

  def augment(key, images):
    return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)

  return augment
