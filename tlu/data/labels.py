"""Whether a dataset has labels, and the refusal of a run that reads labels it does not have.

A dataset prepared from a folder of images without class folders (or a CSV / .npy without
labels) has no `label` feature. Label-free methods train on it; every part of a run that
reads labels (a supervised or adaptation method, the evaluations (`config.evals`), the online probe, the
pixel baseline, a class subset) is refused before any compute by `check_labels`, with one
line saying how to turn each off.
"""

LABEL_FREE_INPUTS = ('images', 'indexed')   # method batch layouts that carry no labels


def has_labels(features):
  """features: a TFDS FeaturesDict (builder.info.features) -> whether it has a `label`."""
  return 'label' in features


def label_users(cfg, method_inputs):
  """[(what reads labels, the flag that turns it off)] of a task config `cfg`.

  method_inputs: the method's batch layout (`Method.inputs`).
  """
  users = []
  if method_inputs not in LABEL_FREE_INPUTS:
    users.append((f'method {cfg.method.name}', '--config.method.name=<a label-free method: '
                                               'simclr, byol, ...>'))
  evals = sorted(dict(cfg.get('evals', {}) or {}))
  if evals:
    users.append((f'evals {", ".join(evals)}', '--config.evals={}'))
  for key in ('online_probe', 'pixel_baseline'):
    if cfg.get(key, False):
      users.append((key, f'--config.{key}=False'))
  if tuple(cfg.get('dataset', {}).get('classes', ()) or ()):
    users.append(('dataset.classes', '--config.dataset.classes=()'))
  return users


def check_labels(cfg, method_inputs, dataset_name):
  """Raises ValueError (one line) when `cfg` reads labels of the unlabelled `dataset_name`."""
  users = label_users(cfg, method_inputs)
  if users:
    raise ValueError(f'dataset {dataset_name!r} has no labels, and '
                     f'{"; ".join(w for w, _ in users)} read them: turn them off with '
                     f'{" ".join(f for _, f in users)}')
