"""Real files in the formats' own layouts, written from arrays, for the prepare tests.

Image folders are written with Pillow from the embedded digits (scikit-learn's 8x8) and
crops of scikit-image's photographs; CIFAR pickles, MNIST idx and SVHN .mat files follow the
layout their pages publish (written here with pickle, struct and scipy.io.savemat, not with
the code under test).
"""

import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
from PIL import Image


def digits(n, seed=0):
  """n (8, 8) uint8 digits of scikit-learn and their (n,) labels, a seeded choice."""
  from sklearn.datasets import load_digits
  d = load_digits()
  idx = np.random.default_rng(seed).choice(len(d.target), n, replace=False)
  return np.round(d.images[idx] * 255 / 16).astype(np.uint8), d.target[idx]


def photo_crops(sizes, seed=0):
  """One RGB crop of scikit-image's astronaut / coffee / chelsea per (h, w) in `sizes`."""
  import skimage
  root = os.path.join(os.path.dirname(skimage.__file__), 'data')
  photos = [np.asarray(Image.open(os.path.join(root, f)).convert('RGB'))
            for f in ('astronaut.png', 'coffee.png', 'chelsea.png')]
  rng = np.random.default_rng(seed)
  out = []
  for k, (h, w) in enumerate(sizes):
    p = photos[k % len(photos)]
    y, x = rng.integers(p.shape[0] - h), rng.integers(p.shape[1] - w)
    out.append(np.ascontiguousarray(p[y:y + h, x:x + w]))
  return out


def save(array, path, **kw):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array).save(
      path, **kw)


def digit_folder(root, per_class=3, classes=('five', 'one', 'zero'), splits=('train', 'test')):
  """root/<split>/<class>/<i>.png grey 8x8 digits; returns {relative path: (array, class)}."""
  images, _ = digits(per_class * len(classes) * len(splits))
  written, k = {}, 0
  for split in splits:
    for c in classes:
      for i in range(per_class):
        rel = os.path.join(split, c, f'{i:02d}.png')
        save(images[k], os.path.join(root, rel))
        written[rel] = (images[k], c)
        k += 1
  return written


def cifar_tarball(path, dataset, train, test, names, coarse=None, coarse_names=None):
  """The python-version CIFAR tarball: pickled dicts of b'data' (N, 3072) uint8 rows (1024
  red, 1024 green, 1024 blue, each 32x32 row-major) and their labels (the CIFAR page).

  train / test: (images (N, 32, 32, 3) uint8, labels (N,)); CIFAR-10's train is cut into
  five batches. coarse: (train coarse labels, test coarse labels) for CIFAR-100.
  """
  rows = lambda x: x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
  if dataset == 'cifar10':
    folder, parts = 'cifar-10-batches-py', np.array_split(np.arange(len(train[0])), 5)
    files = {f'data_batch_{i + 1}': {b'data': rows(train[0][p]), b'labels': [int(v) for v in train[1][p]],
                                     b'batch_label': b'training batch'}
             for i, p in enumerate(parts)}
    files['test_batch'] = {b'data': rows(test[0]), b'labels': [int(v) for v in test[1]]}
    files['batches.meta'] = {b'label_names': [n.encode() for n in names]}
  else:
    folder = 'cifar-100-python'
    files = {split: {b'data': rows(x), b'fine_labels': [int(v) for v in y],
                     b'coarse_labels': [int(v) for v in c]}
             for split, (x, y), c in (('train', train, coarse[0]), ('test', test, coarse[1]))}
    files['meta'] = {b'fine_label_names': [n.encode() for n in names],
                     b'coarse_label_names': [n.encode() for n in coarse_names]}
  with tarfile.open(path, 'w:gz') as tar:
    for name, content in reversed(list(files.items())):   # not in sorted order, as the real one
      data = pickle.dumps(content)
      info = tarfile.TarInfo(f'{folder}/{name}')
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def idx_file(path, array, magic):
  """An idx file (the MNIST page): big-endian int32 magic, dims, then the bytes; .gz zips."""
  data = struct.pack('>i', magic) + b''.join(struct.pack('>i', d) for d in array.shape)
  data += array.astype(np.uint8).tobytes()
  with (gzip.open if path.endswith('.gz') else open)(path, 'wb') as f:
    f.write(data)


def svhn_mat(path, images, digits_):
  """SVHN format 2: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
  import scipy.io
  y = np.where(digits_ == 0, 10, digits_).astype(np.uint8)[:, None]
  scipy.io.savemat(path, {'X': images.transpose(1, 2, 3, 0), 'y': y})
