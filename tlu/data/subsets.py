"""Task views of a data source: a subset of classes, relabelled 0..K-1, optionally few labels.

Source and target tasks of the transfer experiments (digits 0-4 -> digits 5-9)
and the k-labels-per-class regimes of label-efficiency studies are views, not
copies: the underlying TFDS source is read lazily through them.
"""

import numpy as np

from tlu import checks
from tlu.data import preprocess, sources

# Of a dataset config: every image fitted to image_size x image_size x channels (0: as stored).
RANGES = {'image_size': checks.NON_NEGATIVE_INT, 'channels': checks.NON_NEGATIVE_INT}


def labels_of(source):
  """(N,) int labels of a source, read once; DatasetError for a dataset without labels."""
  if len(source) and 'label' not in source[0]:
    raise sources.DatasetError('the dataset has no labels (it was prepared from images '
                               'without classes), and this stage reads them')
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

  labels_per_class > 0 keeps a seeded subset of that many examples per class;
  image_size / channels fit each image on read (`tlu.data.preprocess.fit_image`).
  `labels` (of the whole source) saves reading them again for another view.
  """

  def __init__(self, source, classes=(), labels_per_class=0, seed=0, labels=None,
               image_size=0, channels=0, labelled=True):
    self.source, self.fit, self.labelled = source, (image_size, channels), labelled
    if not labelled:   # images only: every example, no label key
      if classes or labels_per_class:
        raise ValueError('an unlabelled dataset has no classes to choose or labels to keep')
      self.indices, self.classes, self.source_labels = np.arange(len(source)), (), None
      return
    labels = labels_of(source) if labels is None else np.asarray(labels)
    classes = tuple(classes) or tuple(np.unique(labels).tolist())
    keep = np.flatnonzero(np.isin(labels, classes))
    chosen = few_labels(labels[keep], labels_per_class, seed)
    self.indices = keep[chosen]
    self.classes = classes
    self.source_labels = labels
    remap = np.full(max(int(labels.max()), max(classes)) + 1, -1)
    remap[list(classes)] = np.arange(len(classes))
    self.labels = remap[labels[self.indices]]

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    example = dict(self.source[int(self.indices[i])])
    if self.labelled:
      example['label'] = np.int64(self.labels[i])
    if any(self.fit):
      example['image'] = preprocess.fit_image(example['image'], *self.fit)
    return example

  def subset(self, labels_per_class, seed):
    """The same task with `labels_per_class` seeded examples of each class."""
    return TaskView(self.source, self.classes, labels_per_class, seed, self.source_labels,
                    *self.fit)


def task_source(ds, split, labels_per_class=0, seed=0, labels=None, labelled=True):
  """The examples of a dataset config `ds` (name, data_dir, classes, image_size, channels).

  Images are fitted to ds.image_size / ds.channels (0 = as stored), labels to
  ds.classes (() = all). Opening fails clearly for unknown or unprepared data.
  labelled=False: a dataset without labels, read as {'image'} examples.
  """
  source = sources.open_source(ds['name'], split, ds.get('data_dir'))
  return TaskView(source, ds.get('classes', ()), labels_per_class, seed, labels,
                  ds.get('image_size', 0), ds.get('channels', 0), labelled)


def input_shape(ds, info):
  """The model input shape for dataset config `ds` with stored `info.image_shape`."""
  return preprocess.fitted_shape(info.image_shape, ds.get('image_size', 0), ds.get('channels', 0))
