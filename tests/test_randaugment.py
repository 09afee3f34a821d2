"""RandAugment and Cutout on device against Pillow, op by op, on the same parameters.

The Pillow side is USB's `semilearn/datasets/augmentation/randaugment.py` (each op one
Pillow call); point ops and enhancements must match exactly, the nearest-neighbour
geometric ops within 1 grey level on at least 99% of pixels.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from tlu.data import augment as augment_lib
from tlu.data.augment import cutout as cutout_lib
from tlu.data.augment import randaugment as ra

GEOMETRIC = ('Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY')
SHAPES = ((32, 32, 3), (28, 28, 1))
PER_OP = 6


def pillow_op(name, img, v):
  """USB's op `name` with magnitude v on a PIL image."""
  if name == 'AutoContrast':
    return ImageOps.autocontrast(img)
  if name == 'Brightness':
    return ImageEnhance.Brightness(img).enhance(v)
  if name == 'Color':
    return ImageEnhance.Color(img).enhance(v)
  if name == 'Contrast':
    return ImageEnhance.Contrast(img).enhance(v)
  if name == 'Equalize':
    return ImageOps.equalize(img)
  if name == 'Identity':
    return img
  if name == 'Posterize':
    return ImageOps.posterize(img, max(1, int(v)))
  if name == 'Rotate':
    return img.rotate(v)
  if name == 'Sharpness':
    return ImageEnhance.Sharpness(img).enhance(v)
  if name == 'ShearX':
    return img.transform(img.size, Image.AFFINE, (1, v, 0, 0, 1, 0))
  if name == 'ShearY':
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, v, 1, 0))
  if name == 'Solarize':
    return ImageOps.solarize(img, v)
  if name == 'TranslateX':
    return img.transform(img.size, Image.AFFINE, (1, 0, v * img.size[0], 0, 1, 0))
  if name == 'TranslateY':
    return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, v * img.size[1]))
  raise KeyError(name)


def to_pil(array):
  return Image.fromarray(array if array.shape[-1] == 3 else array[..., 0])


def from_pil(img, shape):
  return np.asarray(img).astype(np.int64).reshape(shape)


def test_the_ops_and_ranges_are_usbs():
  assert [(name, lo, hi) for name, _, lo, hi in ra.OPS] == [
      ('AutoContrast', 0, 1), ('Brightness', 0.05, 0.95), ('Color', 0.05, 0.95),
      ('Contrast', 0.05, 0.95), ('Equalize', 0, 1), ('Identity', 0, 1), ('Posterize', 4, 8),
      ('Rotate', -30, 30), ('Sharpness', 0.05, 0.95), ('ShearX', -0.3, 0.3),
      ('ShearY', -0.3, 0.3), ('Solarize', 0, 256), ('TranslateX', -0.3, 0.3),
      ('TranslateY', -0.3, 0.3)]


@functools.lru_cache(maxsize=None)
def op_cases(shape):
  """PER_OP images per op (uint8) with random magnitudes; restricted ranges so that
  autocontrast and equalize have work to do, some (lo, hi) among the pairs where Pillow's
  float64 autocontrast LUT rounds down (e.g. (0, 25))."""
  rng = np.random.default_rng(len(shape) + shape[-1])
  images, indices, values = [], [], []
  for index, (_, _, lo_v, hi_v) in enumerate(ra.OPS):
    for j in range(PER_OP):
      lo, hi = ((0, 25), (3, 53), (0, 255))[j] if j < 3 else sorted(rng.integers(0, 256, 2))
      img = rng.integers(lo, hi + 1, shape).astype(np.uint8)
      img.reshape(-1)[:2] = (lo, hi)   # both ends present
      images.append(img)
      indices.append(index)
      values.append(np.float32(lo_v + (hi_v - lo_v) * rng.random()))
  ops = jax.jit(jax.vmap(ra.apply_op))
  out = ops(jnp.asarray(indices), jnp.asarray(np.stack(images), jnp.float32),
            jnp.asarray(values, jnp.float32))
  return np.stack(images), np.asarray(indices), np.asarray(values), np.asarray(out)


@pytest.mark.parametrize('shape', SHAPES, ids=('rgb', 'grey'))
@pytest.mark.parametrize('name', ra.OP_NAMES)
def test_op_matches_pillow(name, shape):
  images, indices, values, out = op_cases(shape)
  index = ra.OP_NAMES.index(name)
  for j in np.nonzero(indices == index)[0]:
    expected = from_pil(pillow_op(name, to_pil(images[j]), float(values[j])), shape)
    got = out[j]
    np.testing.assert_array_equal(got, np.round(got))   # stays on the 256 levels
    if name in GEOMETRIC:
      close = np.abs(got.astype(np.int64) - expected) <= 1
      assert close.mean() >= 0.99, (name, values[j], close.mean())
    else:
      np.testing.assert_array_equal(got.astype(np.int64), expected, err_msg=f'{name} {values[j]}')


def test_autocontrast_cases_exercise_pillows_rounding():
  """(0, 25) is a pair where Pillow maps level 25 to 254, not 255."""
  assert ImageOps.autocontrast(Image.fromarray(np.array([[0, 25]], np.uint8))).getpixel(
      (1, 0)) == 254
  images, indices, _, out = op_cases(SHAPES[0])
  first = np.nonzero(indices == ra.OP_NAMES.index('AutoContrast'))[0][0]
  assert images[first].max() == 25 and out[first].max() == 254


@functools.lru_cache(maxsize=None)
def chains(num_ops=2, n=12):
  rng = np.random.default_rng(7)
  images = rng.integers(0, 256, (n, 32, 32, 3)).astype(np.uint8)
  keys = jax.random.split(jax.random.key(3), n)
  policy = jax.vmap(lambda k: ra.sample_policy(k, num_ops))(keys)
  out = jax.jit(jax.vmap(lambda k, x: ra.rand_augment(k, x, num_ops)))(
      keys, jnp.asarray(images, jnp.float32) / 255.0)
  return images, [np.asarray(p) for p in policy], np.asarray(out)


def test_rand_augment_chains_pillow_ops_of_its_policy():
  images, (indices, values), out = chains()
  for j, image in enumerate(images):
    img = to_pil(image)
    for index, v in zip(indices[j], values[j]):
      img = pillow_op(ra.OP_NAMES[index], img, float(v))
    close = np.abs(np.round(out[j] * 255).astype(np.int64) - from_pil(img, image.shape)) <= 1
    assert close.mean() >= 0.99


def test_policy_draws_ops_uniformly_with_replacement_and_magnitudes_in_range():
  keys = jax.random.split(jax.random.key(0), 4000)
  indices, values = jax.jit(jax.vmap(lambda k: ra.sample_policy(k, 2)))(keys)
  indices, values = np.asarray(indices), np.asarray(values)
  counts = np.bincount(indices.ravel(), minlength=14)
  assert counts.min() > 8000 / 14 * 0.8 and counts.max() < 8000 / 14 * 1.2
  assert (indices[:, 0] == indices[:, 1]).mean() > 0.5 / 14   # repeats allowed
  lows = np.array([lo for _, _, lo, _ in ra.OPS])[indices]
  highs = np.array([hi for _, _, _, hi in ra.OPS])[indices]
  assert np.all(values >= lows) and np.all(values <= highs)


@pytest.mark.parametrize('channels', (3, 1))
def test_cutout_matches_pillow_rectangle(channels):
  keys = jax.random.split(jax.random.key(5), 16)
  images = np.random.default_rng(0).integers(0, 256, (16, 24, 20, channels)).astype(np.uint8)
  boxes = jax.vmap(lambda k: cutout_lib.cutout_box(k, 24, 20, 0.5))(keys)
  out = jax.jit(jax.vmap(lambda k, x: cutout_lib.cutout(k, x, 0.5, scale=1.0)))(
      keys, jnp.asarray(images, jnp.float32))
  for j, image in enumerate(images):
    x0, y0, x1, y1 = (float(b[j]) for b in boxes)
    img = to_pil(image).copy()
    if x1 > x0:
      fill = (125, 123, 114) if channels == 3 else 123
      ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), fill)
    np.testing.assert_array_equal(np.asarray(out[j]).astype(np.int64),
                                  from_pil(img, image.shape))
  sides = np.asarray(boxes[2] - boxes[0])
  assert sides.max() <= 0.5 * 20 + 1e-5


def test_cutout_grey_is_pillows_luma_of_usbs_colour():
  grey = Image.new('RGB', (1, 1), (125, 123, 114)).convert('L').getpixel((0, 0))
  assert grey == cutout_lib.FILL_GREY


def test_random_shift_is_a_reflect_padded_crop_with_every_offset():
  image = np.random.default_rng(1).uniform(size=(16, 16, 1)).astype(np.float32)
  padded = np.pad(image, ((2, 2), (2, 2), (0, 0)), mode='reflect')
  crops = {(t, l): padded[t:t + 16, l:l + 16] for t in range(5) for l in range(5)}
  keys = jax.random.split(jax.random.key(0), 200)
  out = np.asarray(jax.jit(jax.vmap(lambda k: ra.random_shift(k, image, 0.125)))(keys))
  seen = set()
  for view in out:
    match = [o for o, crop in crops.items() if np.array_equal(view, crop)]
    assert match
    seen.update(match)
  assert len(seen) == 25


@pytest.mark.parametrize('preset,shape', [('fixmatch_strong', (4, 32, 32, 3)),
                                          ('digits_strong', (4, 28, 28, 1))])
def test_strong_presets_are_key_deterministic_and_in_range(preset, shape):
  images = jnp.asarray(np.random.default_rng(0).uniform(size=shape), jnp.float32)
  augment = jax.jit(augment_lib.make_augment(preset))
  first = np.asarray(augment(jax.random.key(0), images))
  np.testing.assert_array_equal(first, np.asarray(augment(jax.random.key(0), images)))
  assert not np.allclose(first, np.asarray(augment(jax.random.key(1), images)))
  assert first.shape == shape and first.min() >= 0 and first.max() <= 1
  # RandAugment leaves Pillow's 256 levels.
  np.testing.assert_allclose(first * 255, np.round(first * 255), atol=1e-3)


def test_a_spec_names_randaugment_and_cutout_and_checks_their_ranges():
  config = augment_lib.resolve_config({'preset': 'digits_weak', 'randaugment_ops': 3,
                                       'cutout_frac': 0.25})
  assert (config.shift_frac, config.randaugment_ops, config.cutout_frac) == (0.125, 3, 0.25)
  for bad in ({'randaugment_ops': -1}, {'cutout_frac': 1.5}, {'shift_frac': -0.1}):
    with pytest.raises(ValueError, match=next(iter(bad))):
      augment_lib.resolve_config(bad)


def test_strong_view_gives_each_image_its_own_policy_on_pillow_levels():
  # FixMatch's strong view of 16 copies of one image: each copy draws its own shift, ops and
  # Cutout box (the rows differ), and every pixel is one of Pillow's 256 levels (RandAugment
  # and Cutout's grey fill return levels; the shift moves whole pixels).
  image = np.random.default_rng(0).integers(0, 256, (12, 12, 1)).astype(np.float32) / 255.0
  images = jnp.asarray(np.repeat(image[None], 16, axis=0))
  out = np.asarray(jax.jit(ra.strong_view('randaugment'))(jax.random.key(3), images))
  assert out.shape == images.shape
  np.testing.assert_allclose(out * 255.0, np.round(out * 255.0), atol=1e-3)
  assert len({row.tobytes() for row in out}) == 16
  with pytest.raises(ValueError, match='num_ops an integer >= 1'):
    ra.strong_view({'name': 'randaugment', 'num_ops': 0})
