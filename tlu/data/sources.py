"""Random-access data sources: TFDS array_record, embedded datasets built on first use.

Every dataset, embedded or from the TFDS catalog, goes through
`tfds.data_source`, so the rest of the pipeline never knows the difference.
Nothing here downloads: a catalog dataset that is not prepared is an error that
names the command which prepares it.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tlu.data import digits, labels, mnist  # noqa: F401  (register the embedded builders)

EMBEDDED = ('tlu_digits', 'tlu_digits_m', 'tlu_mnist', 'tlu_mnist_m')


class DatasetError(ValueError):
  """A dataset that cannot be opened; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  image_shape: tuple
  num_classes: int   # 0 when unlabelled
  splits: dict  # split name -> number of examples
  labelled: bool = True   # False: no `label` feature (an unlabelled prepared dataset)


def _builder(name, data_dir):
  try:
    return tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # tfds raises several types for unknown names/configs
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise DatasetError(f'unknown dataset {name!r}: {first}') from None


# Catalog datasets whose original files `experiments.prepare` reads (README, Datasets).
PREPARE_FORMATS = {'cifar10': 'cifar10', 'cifar100': 'cifar100', 'mnist': 'mnist',
                   'svhn_cropped': 'svhn'}


def open_source(name, split, data_dir=None):
  """The TFDS data source of one split (random access, len(), dict examples).

  Embedded datasets are built on first use. A catalog dataset that is not
  prepared raises DatasetError naming the `tfds build` command (under
  `tfds.testing.mock_data` the mocked source is returned instead).
  """
  builder = _builder(name, data_dir)
  if not builder.is_prepared() and name.split('/')[0] in EMBEDDED:
    tfds.disable_progress_bar()
    builder.download_and_prepare(file_format='array_record')
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception:  # not prepared, or prepared as tfrecord only
    if builder.is_prepared() and split not in builder.info.splits:
      raise DatasetError(f'dataset {name!r} has no split {split!r}; it has '
                         f'{sorted(builder.info.splits)}') from None
    dir_flag = f' --data_dir={data_dir}' if data_dir else ''
    fmt = PREPARE_FORMATS.get(name.split('/')[0])
    own = (f', or without it from the original files: python -m experiments.prepare '
           f'--config=configs/prepare.py:{fmt} --config.path=<the downloaded files> '
           f'--config.name={name}{dir_flag.replace("--", "--config.")}' if fmt else '')
    raise DatasetError(
        f'dataset {name!r} is not prepared as array_record in {builder.data_dir_root}; '
        f'prepare it once with: tfds build {name}{dir_flag} --file_format=array_record '
        f'(this one step needs tensorflow; training does not){own}') from None


def dataset_info(name, splits, data_dir=None):
  """Opens `splits` (failing clearly if it cannot) and returns shapes, classes, sizes."""
  sources = {split: open_source(name, split, data_dir) for split in splits}
  features = _builder(name, data_dir).info.features
  labelled = labels.has_labels(features)
  return DatasetInfo(name=name, image_shape=tuple(features['image'].shape),
                     num_classes=int(features['label'].num_classes) if labelled else 0,
                     splits={k: len(v) for k, v in sources.items()}, labelled=labelled)


def is_labelled(name, data_dir=None):
  """Whether dataset `name` has a `label` feature (reads its info only, no split)."""
  return labels.has_labels(_builder(name, data_dir).info.features)


def load_arrays(name, split, data_dir=None):
  """A whole split as numpy: {'image': (N, H, W, C) uint8, 'label': (N,) int64}.

  For small splits only (evaluation features, embedded data); training reads
  through the grain loader instead.
  """
  source = open_source(name, split, data_dir)
  examples = [source[i] for i in range(len(source))]
  return {k: np.stack([np.asarray(ex[k]) for ex in examples]) for k in ('image', 'label')}
