"""CIFAR-10 / CIFAR-100, python version: `cifar-10-python.tar.gz` / `cifar-100-python.tar.gz`
from https://www.cs.toronto.edu/~kriz/cifar.html, or the folders they extract to.

Layout (the CIFAR page): CIFAR-10 `cifar-10-batches-py/data_batch_1..5`, `test_batch`,
`batches.meta` (label_names); CIFAR-100 `cifar-100-python/train`, `test`, `meta`
(fine_label_names, coarse_label_names). Each batch is a pickled dict whose b'data' is a
(N, 3072) uint8 array, a row the 1024 red, then green, then blue values of a 32x32 image in
row-major order, and b'labels' (CIFAR-100: b'fine_labels', b'coarse_labels') its labels.
Written as the TFDS catalog's `cifar10` / `cifar100` (same name, version and features: id,
image, label, and CIFAR-100's coarse_label), so the configs that name them read it as is.
The pickles are read with an unpickler that builds only dicts, lists, strings and numpy
arrays. One batch is in memory at a time.
"""

import io
import pickle
import tarfile

import numpy as np
from etils import epath

from tlu.data.prepare import FORMATS
from tlu.data.prepare.layout import PrepareError, Source, Split

LAYOUTS = {
    'cifar10': dict(folder='cifar-10-batches-py', meta='batches.meta',
                    splits={'train': [f'data_batch_{i}' for i in range(1, 6)],
                            'test': ['test_batch']},
                    labels=(('label', b'labels', b'label_names'),)),
    'cifar100': dict(folder='cifar-100-python', meta='meta',
                     splits={'train': ['train'], 'test': ['test']},
                     labels=(('label', b'fine_labels', b'fine_label_names'),
                             ('coarse_label', b'coarse_labels', b'coarse_label_names'))),
}
_ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
            ('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', 'scalar'),
            ('numpy._core.multiarray', 'scalar'), ('_codecs', 'encode')}


class _Unpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if (module, name) not in _ALLOWED:
      raise pickle.UnpicklingError(f'{module}.{name} is not part of a CIFAR batch')
    return super().find_class(module, name)


class _Files:
  """The batch files of a tarball or an extracted folder, read one at a time."""

  def __init__(self, path, folder):
    self.path = epath.Path(path)
    self.folder = folder
    if self.path.is_dir():
      inner = self.path / folder
      self.root = inner if inner.is_dir() else self.path
      self.members = None
    elif self.path.is_file():
      try:
        with tarfile.open(self.path) as tar:
          self.members = {m.name.split('/', 1)[-1]: m.name for m in tar.getmembers()
                          if m.isfile() and m.name.startswith(folder + '/')}
      except (tarfile.TarError, OSError, EOFError) as e:
        raise PrepareError(f'{path}: not a CIFAR python tarball ({e})') from None
    else:
      raise PrepareError(f'{path}: no such file or folder')

  def has(self, name):
    return name in self.members if self.members is not None else (self.root / name).is_file()

  def load(self, name):
    try:
      if self.members is None:
        data = (self.root / name).read_bytes()
      else:   # one pass over the stream up to the member, no index of the whole tarball
        with tarfile.open(self.path) as tar:
          member = next(m for m in tar if m.name == self.members[name])
          data = tar.extractfile(member).read()
      return _Unpickler(io.BytesIO(data), encoding='bytes').load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
      raise PrepareError(f'{self.path}: {name} is not a CIFAR batch ({e})') from None


def _images(batch, where):
  data = batch.get(b'data') if isinstance(batch, dict) else None
  if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or (
      data.shape[1] != 3072):
    raise PrepareError(f'{where}: b"data" is not an (N, 3072) uint8 array')
  return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _read(path, dataset):
  layout = LAYOUTS[dataset]
  files = _Files(path, layout['folder'])
  needed = [layout['meta']] + [f for fs in layout['splits'].values() for f in fs]
  missing = [f for f in needed if not files.has(f)]
  if missing:
    raise PrepareError(f'{path}: no {layout["folder"]}/{missing[0]}; expected the python '
                       f'version of {dataset} ({", ".join(needed)})')
  meta = files.load(layout['meta'])
  names = {}
  for feature, _, names_key in layout['labels']:
    if not isinstance(meta, dict) or names_key not in meta:
      raise PrepareError(f'{path}: {layout["meta"]} has no {names_key.decode()}')
    names[feature] = tuple(n.decode() if isinstance(n, bytes) else str(n)
                           for n in meta[names_key])
  splits = {}
  for split, batch_files in layout['splits'].items():
    labels, sizes = {f: [] for f, _, _ in layout['labels']}, []
    for name in batch_files:   # labels of every batch up front (small), images later
      batch = files.load(name)
      sizes.append(len(_images(batch, f'{path}: {name}')))
      for feature, key, _ in layout['labels']:
        values = np.asarray(batch.get(key, ()), np.int64)
        if values.shape != (sizes[-1],) or values.min() < 0 or (
            values.max() >= len(names[feature])):
          raise PrepareError(f'{path}: {name} {key.decode()} do not match its {sizes[-1]} '
                             f'images and {len(names[feature])} classes')
        labels[feature].append(values)
    offsets = np.cumsum([0] + sizes)

    def items(pos, batch_files=batch_files, offsets=offsets):
      pos = np.asarray(pos)
      for k, name in enumerate(batch_files):
        here = pos[(pos >= offsets[k]) & (pos < offsets[k + 1])] - offsets[k]
        if len(here):
          images = _images(files.load(name), name)
          yield from (images[i] for i in here)

    n = int(offsets[-1])
    extras = {f: np.concatenate(v) for f, v in labels.items() if f != 'label'}
    extras['id'] = np.asarray([f'{split}_{i:05d}' for i in range(n)])
    splits[split] = Split(size=n, items=items, names=lambda i, s=split: f'{path} {s}[{i}]',
                          labels=np.concatenate(labels['label']), extras=extras)
  return Source(splits=splits, label_names=names['label'], catalog=(dataset,),
                extra_names={f: n for f, n in names.items() if f != 'label'})


@FORMATS.register('cifar10')
def read_cifar10(path):
  return _read(path, 'cifar10')


@FORMATS.register('cifar100')
def read_cifar100(path):
  return _read(path, 'cifar100')
