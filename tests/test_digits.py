"""The embedded datasets: shapes, dtypes, split, determinism, and their pixels from first principles."""

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from tlu.data import digits, sources


@pytest.fixture(scope='module')
def arrays(data_dir):
  names = ('tlu_digits', 'tlu_digits/32x32_rgb', 'tlu_digits_m')
  return {(n, s): sources.load_arrays(n, s, data_dir) for n in names for s in ('train', 'test')}


def _sk():
  d = load_digits()
  return d.images, d.target


def test_shapes_dtypes_and_split_sizes(arrays):
  expected = {'tlu_digits': (8, 8, 1), 'tlu_digits/32x32_rgb': (32, 32, 3),
              'tlu_digits_m': (32, 32, 3)}
  for (name, split), a in arrays.items():
    n = 1437 if split == 'train' else 360
    assert a['image'].shape == (n,) + expected[name], (name, split)
    assert a['image'].dtype == np.uint8
    assert a['label'].shape == (n,) and set(np.unique(a['label'])) == set(range(10))


def test_split_is_stratified_and_covers_every_image_once(arrays):
  images, target = _sk()
  tr, te = arrays[('tlu_digits', 'train')], arrays[('tlu_digits', 'test')]
  # Stratified: each class's test share is within one image of 360/1797.
  for c in range(10):
    n_c = np.sum(target == c)
    assert abs(np.sum(te['label'] == c) - n_c * 360 / 1797) <= 1
  # Every scikit-learn image appears exactly once across the two splits, with its label.
  sk_keys = sorted((np.round(im * 255 / 16).astype(np.uint8).tobytes(), int(t))
                   for im, t in zip(images, target))
  ours = sorted((im[..., 0].tobytes(), int(t)) for a in (tr, te)
                for im, t in zip(a['image'], a['label']))
  assert ours == sk_keys


def test_same_images_and_labels_across_the_three_forms(arrays):
  for split in ('train', 'test'):
    small = arrays[('tlu_digits', split)]
    big = arrays[('tlu_digits/32x32_rgb', split)]
    m = arrays[('tlu_digits_m', split)]
    np.testing.assert_array_equal(small['label'], big['label'])
    np.testing.assert_array_equal(small['label'], m['label'])
    # 32x32 is a bilinear (half-pixel centres) upsampling of 8x8: compare with jax.image.
    ref = jax.image.resize(small['image'][..., 0].astype(np.float32), (len(small['image']), 32, 32),
                           'bilinear', antialias=False)
    assert np.max(np.abs(np.asarray(ref) - big['image'][..., 0].astype(np.float32))) <= 1.0
    assert np.all(big['image'][..., 0] == big['image'][..., 2])
    # digits_m = |photo crop - digit|: differs from the plain digit, is colourful.
    assert np.mean(np.abs(m['image'].astype(int) - big['image'].astype(int))) > 20
    assert np.mean(np.std(m['image'].astype(float), axis=-1)) > 5


def test_build_is_deterministic(tmp_path, arrays):
  again = sources.load_arrays('tlu_digits_m', 'train', str(tmp_path))
  np.testing.assert_array_equal(again['image'], arrays[('tlu_digits_m', 'train')]['image'])
  np.testing.assert_array_equal(again['label'], arrays[('tlu_digits_m', 'train')]['label'])


def test_textures_differ_per_image():
  tex = digits.textures(4)
  assert tex.shape == (4, 32, 32, 3)
  assert not np.array_equal(tex[0], tex[1])


def test_unprepared_catalog_dataset_names_the_build_and_the_prepare_command(tmp_path):
  with pytest.raises(sources.DatasetError, match='tfds build mnist .*--file_format=array_record'
                     '.*experiments.prepare --config=configs/prepare.py:mnist '):
    sources.open_source('mnist', 'train', str(tmp_path))


def test_unknown_dataset_is_one_clear_error(tmp_path):
  with pytest.raises(sources.DatasetError, match="unknown dataset 'no_such_dataset'"):
    sources.open_source('no_such_dataset', 'train', str(tmp_path))
