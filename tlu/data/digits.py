"""Embedded offline datasets built from scikit-learn's bundled handwritten digits.

`tlu_digits` holds the 1,797 real 8x8 digits of `sklearn.datasets.load_digits`;
`tlu_digits_m` puts the same digits, upsampled to 32x32 RGB, over seeded colour
crops of real colour photographs as |crop - digit| (the MNIST -> MNIST-M shift
of Ganin & Lempitsky, 2015, without a download: the photographs are the two that
scikit-learn ships). Both use one fixed stratified split (train 1,437 /
test 360) so a source and a target model see the same images and labels.

Features are `tfds.features.Tensor(uint8)`: the images are tiny and held as arrays. An
`Image` feature would also work without TensorFlow when fed encoded bytes, a file path or a
`PIL.Image` (tlu.data.prepare does so); only a numpy array goes through `tf.image` to be
encoded.
"""

import abc

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 0
TEXTURE_SEED = 1
NUM_TEST = 360


def _digits_uint8():
  """(1797, 8, 8) uint8 in 0..255 and (1797,) int64 labels."""
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  digits = load_digits()
  # load_digits stores 0..16 ink counts.
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
  return images, digits.target.astype(np.int64)


def split_indices(labels):
  """Fixed stratified split: {'train': idx, 'test': idx}, identical on every machine."""
  from sklearn.model_selection import train_test_split  # pylint: disable=import-outside-toplevel
  idx = np.arange(len(labels))
  train, test = train_test_split(
      idx, test_size=NUM_TEST, stratify=labels, random_state=SPLIT_SEED)
  return {'train': np.sort(train), 'test': np.sort(test)}


def upsample(images, size=32):
  """(N, h, w) uint8 -> (N, size, size) uint8, bilinear (align-corners=False)."""
  n, h, w = images.shape
  x = images.astype(np.float32)

  def coords(src, dst):
    pos = (np.arange(dst) + 0.5) * src / dst - 0.5
    pos = np.clip(pos, 0, src - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    return lo, hi, (pos - lo).astype(np.float32)

  r0, r1, rw = coords(h, size)
  c0, c1, cw = coords(w, size)
  rows = x[:, r0] * (1 - rw)[None, :, None] + x[:, r1] * rw[None, :, None]
  out = rows[:, :, c0] * (1 - cw) + rows[:, :, c1] * cw
  del n
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def textures(n, size=32, seed=TEXTURE_SEED):
  """n random size x size crops of real colour photographs, (n, size, size, 3) uint8.

  MNIST-M crops BSDS500 photographs; offline, we crop the two photographs that
  scikit-learn ships (`load_sample_images`: a temple in China and a flower), at
  seeded positions, so every image gets its own natural background: its colour,
  brightness and edges differ from image to image as in MNIST-M.
  """
  from sklearn.datasets import load_sample_images  # pylint: disable=import-outside-toplevel
  photos = load_sample_images().images
  rng = np.random.default_rng(seed)
  which = rng.integers(len(photos), size=n)
  out = np.empty((n, size, size, 3), np.uint8)
  for i, k in enumerate(which):
    photo = photos[k]
    y = rng.integers(photo.shape[0] - size + 1)
    x = rng.integers(photo.shape[1] - size + 1)
    out[i] = photo[y:y + size, x:x + size]
  return out


def digits_32_rgb(images):
  """(N, 8, 8) uint8 -> (N, 32, 32, 3) uint8 grey digits."""
  big = upsample(images, 32)
  return np.repeat(big[..., None], 3, axis=-1)


def digits_m(images):
  """(N, 8, 8) uint8 -> (N, 32, 32, 3) uint8 |texture - digit| composites."""
  big = digits_32_rgb(images).astype(np.int16)
  tex = textures(len(images)).astype(np.int16)
  return np.abs(tex - big).astype(np.uint8)


class _DigitsBuilder(tfds.core.GeneratorBasedBuilder):
  """Shared generator for the two embedded builders."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}

  @abc.abstractmethod
  def _shape(self):
    """The stored image shape."""

  @abc.abstractmethod
  def _images(self, images):
    """(N, 8, 8) uint8 digits -> the stored images."""

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=self._shape(), dtype=np.uint8),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is in scikit-learn's wheel
    images, labels = _digits_uint8()
    images = self._images(images)
    return {name: self._generate_examples(images[idx], labels[idx], idx)
            for name, idx in split_indices(labels).items()}

  def _generate_examples(self, images, labels, idx):
    for i, image, label in zip(idx, images, labels):
      yield int(i), {'image': image, 'label': int(label)}


class TluDigits(_DigitsBuilder):
  """The real 8x8 digits; config `32x32_rgb` gives them at the size of tlu_digits_m."""

  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name='8x8', description='8x8x1 as in scikit-learn.'),
      tfds.core.BuilderConfig(name='32x32_rgb',
                              description='Bilinear 32x32, grey replicated to RGB.'),
  ]

  def _shape(self):
    return (8, 8, 1) if self.builder_config.name == '8x8' else (32, 32, 3)

  def _images(self, images):
    if self.builder_config.name == '8x8':
      return images[..., None]
    return digits_32_rgb(images)


class TluDigitsM(_DigitsBuilder):
  """The digits at 32x32 RGB as |photograph crop - digit| (offline MNIST-M)."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'First release: synthetic colour-field backgrounds.',
                   '1.1.0': 'Backgrounds are crops of real photographs, as in MNIST-M (on the '
                            'synthetic fields a source model was at chance, 10%).'}

  def _shape(self):
    return (32, 32, 3)

  def _images(self, images):
    return digits_m(images)
