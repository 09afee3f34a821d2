"""Task views of a data source: a subset of classes, relabelled 0..K-1, optionally few labels.

Source and target tasks of the transfer experiments (digits 0-4 -> digits 5-9)
and the k-labels-per-class regimes of label-efficiency studies are views, not
copies: the underlying TFDS source is read lazily through them.
"""

import numpy as np


def labels_of(source):
  """(N,) int labels of a source, read once."""
  return np.asarray([int(source[i]['label']) for i in range(len(source))])


def few_labels(labels, per_class, seed):
  """Indices of `per_class` examples of each class (seeded, sorted); all if per_class <= 0."""
  if per_class <= 0:
    return np.arange(len(labels))
  rng = np.random.default_rng(seed)
  picked = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    if len(idx) < per_class:
      raise ValueError(f'class {c} has {len(idx)} examples, fewer than {per_class} asked for')
    picked.append(rng.choice(idx, per_class, replace=False))
  return np.sort(np.concatenate(picked))


class TaskView:
  """Random-access source over `classes` of `source` (labels mapped to their position).

  labels_per_class > 0 keeps a seeded subset of that many examples per class.
  """

  def __init__(self, source, classes=(), labels_per_class=0, seed=0, labels=None):
    labels = labels_of(source) if labels is None else np.asarray(labels)
    classes = tuple(classes) or tuple(np.unique(labels).tolist())
    keep = np.flatnonzero(np.isin(labels, classes))
    chosen = few_labels(labels[keep], labels_per_class, seed)
    self.source = source
    self.indices = keep[chosen]
    self.classes = classes
    self._remap = {c: i for i, c in enumerate(classes)}

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    example = dict(self.source[int(self.indices[i])])
    example['label'] = np.int64(self._remap[int(example['label'])])
    return example

  @property
  def labels(self):
    return np.asarray([self._remap[int(self.source[int(i)]['label'])] for i in self.indices])
