"""What a format reads from the user's files, before any image is decoded.

A format module turns a path into a `Source`: its splits (each a `Split` that knows its
size and labels up front and yields its items lazily, in the sorted source order), the
class names (None: an unlabelled dataset) and any extra features. Everything that can be
checked without decoding an image (layout, magic numbers, columns, missing files) is
checked while building it, so bad input fails before anything is written.
"""

import dataclasses
from typing import Callable, Iterator, Optional

import numpy as np

SPLITS = ('train', 'validation', 'test')


class PrepareError(ValueError):
  """Bad input to a preparation: the message is one line that says what and where."""


@dataclasses.dataclass
class Split:
  """One split of a source.

  size: N. items(positions): the raw items at the sorted `positions` (an int array into
  0..N-1), in that order; an item is a file path (str) or an (H, W[, C]) uint8 array.
  names(i): the name of item i in messages; stored as the `file_name` feature when the
  source is files (the path relative to the source). labels: (N,) int64 or None.
  extras: {feature: (N,) array}.
  """
  size: int
  items: Callable[[np.ndarray], Iterator]
  names: Callable[[int], str]
  labels: Optional[np.ndarray] = None
  extras: dict = dataclasses.field(default_factory=dict)
  positions: Optional[np.ndarray] = None   # the subset written (default: all, in order)

  def chosen(self):
    return np.arange(self.size) if self.positions is None else self.positions


@dataclasses.dataclass
class Source:
  """splits: {name: Split}; label_names: class names (None: no labels); catalog: the TFDS
  catalog datasets these files are the original of (under one of those names the catalog's
  version and features are used; the first is the default name); extra_names: class names
  of extra label features (the splits' `extras`: CIFAR-100's coarse_label); file_names:
  store each item's path relative to the source as `file_name`; skipped: files that are not
  images by their extension."""
  splits: dict
  label_names: Optional[tuple]
  catalog: tuple = ()
  extra_names: dict = dataclasses.field(default_factory=dict)   # {feature: class names}
  file_names: bool = False
  skipped: int = 0


def label_names_of(values):
  """Class names and (N,) int64 labels of raw label values (strings or integers).

  Integers (or strings that all read as integers) keep their values: names '0'..str(max).
  Anything else: the sorted distinct values are the names, a label is its name's position.
  """
  values = [str(v).strip() for v in values]
  try:
    ints = np.asarray([int(v) for v in values], np.int64)
  except ValueError:
    names = tuple(sorted(set(values)))
    index = {n: i for i, n in enumerate(names)}
    return names, np.asarray([index[v] for v in values], np.int64)
  if len(ints) and ints.min() < 0:
    raise PrepareError(f'label {int(ints.min())}: integer labels must be >= 0')
  return tuple(str(i) for i in range(int(ints.max()) + 1 if len(ints) else 0)), ints


def carve_validation(source, validation, seed):
  """Moves a seeded, stratified `validation` share of train into a `validation` split.

  validation: a count (>= 1) or a fraction in (0, 1). Stratified by label when labelled
  (scikit-learn's train_test_split), a seeded permutation otherwise; both splits keep the
  sorted source order.
  """
  if not validation:
    return source
  if 'validation' in source.splits:
    raise PrepareError('the source already has a validation split; leave --config.validation=0')
  if 'train' not in source.splits:
    raise PrepareError('--config.validation carves from a train split, and the source has none')
  train = source.splits['train']
  n = train.size
  count = int(round(validation * n)) if validation < 1 else int(validation)
  if validation >= 1 and validation != int(validation):
    raise PrepareError(f'--config.validation={validation}: a count (an integer >= 1) or a '
                       'fraction in (0, 1)')
  if not 0 < count < n:
    raise PrepareError(f'--config.validation={validation}: {count} of {n} train examples; '
                       'leave at least one in each split')
  idx = np.arange(n)
  if train.labels is not None:
    from sklearn.model_selection import train_test_split  # pylint: disable=import-outside-toplevel
    try:
      rest, held = train_test_split(idx, test_size=count, stratify=train.labels,
                                    random_state=seed)
    except ValueError as e:
      raise PrepareError(f'--config.validation={validation}: cannot stratify ({e})') from None
  else:
    held = np.random.default_rng(seed).permutation(n)[:count]
    rest = np.setdiff1d(idx, held)
  splits = dict(source.splits)
  splits['train'] = dataclasses.replace(train, positions=np.sort(rest))
  splits['validation'] = dataclasses.replace(train, positions=np.sort(held))
  return dataclasses.replace(source, splits=splits)
