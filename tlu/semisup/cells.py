"""The cells of a semi-supervised sweep: method x labels per class x seed, and their report.

Config (configs/mnist_semi.py): `dataset` (train / test splits and `validation_split`),
`methods`, `labels_per_class` (0: every label), `seeds`, `task` (what every cell shares:
model, optimizer, steps, batch size, evaluation cadence), one method block per method
(`config.<method>`: its `name` and hyperparameters), and optionally `source` /
`source_step` / `dont_load` (USB's pretrained-backbone setting: every cell starts from
a tlu run's or a converted checkpoint's weights, the leaves `dont_load` names fresh).

A cell's labelled examples are `labels_per_class` per class drawn with its seed from the
training split; its unlabelled examples are the whole training split, labels unread (USB
includes the labelled images in the unlabelled set). Each cell scores the validation
split (for choosing) and the test split (the number) at every evaluation.
"""

import dataclasses

import jax
import numpy as np

from tlu import checks, methods
from tlu.data import subsets
from tlu.models import build_model
from tlu.train import task, writers
from tlu.transfer.pretrained import PretrainedError, load_pretrained
from tlu.transfer.surgery import TransplantError, transplant


def open_splits(config):
  """The task's splits with the labelled `validation` split beside train and test."""
  splits = task.task_splits(config.dataset)
  if not splits.labelled:
    raise ValueError(f'dataset {config.dataset.name} has no labels: a semi-supervised sweep '
                     'needs a few (prepare it with labels, or pretrain on it)')
  splits.extra = {'validation': subsets.task_source(config.dataset, config.validation_split)}
  return splits


def cell_task(config, method, seed):
  """The task config of `method`'s cells at `seed`: `config.task` with the method's block."""
  cfg = config.task.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.seed = int(seed)
    cfg.dataset = config.dataset.copy_and_resolve_references()
    cfg.method = config[method].copy_and_resolve_references()
    cfg.evals = {'test': dict(type='classification', splits=('test',), prefix='test_'),
                 'validation': dict(type='classification', splits=('validation',),
                                    prefix='validation_', loss=False)}
  return cfg


def _as_written(method):
  """A cell's key -> the key in the sweep's config: its method block, `dataset`, or `task`."""
  def rename(path):
    if path.startswith('method.'):
      return f'{method}.{path[len("method."):]}'
    return path if path.startswith('dataset.') else f'task.{path}'
  return rename


def cell_splits(splits, labels_per_class, seed):
  """`labels_per_class` labelled examples per class (seeded), every training image unlabelled."""
  return dataclasses.replace(splits, train=splits.train.subset(labels_per_class, seed),
                             unlabelled=splits.train)


def check(config, splits, open_source=True):
  """Every check of the sweep that needs no compute (a given source opened, unless
  `open_source` is False: a pipeline makes it first)."""
  if not config.methods or not config.seeds or not config.labels_per_class:
    raise ValueError('methods, labels_per_class and seeds must each name at least one')
  checks.check_values(config, {'labels_per_class': checks.FEW_LABELS})
  for name in config.methods:
    if name not in config:
      raise ValueError(f'method {name!r} has no block config.{name} (its name and '
                       'hyperparameters)')
  need = max([k for k in config.labels_per_class if k > 0], default=0)
  counts = np.bincount([int(e['label']) for e in splits.train], minlength=splits.num_classes)
  if need and counts.min() < need:
    raise ValueError(f'{config.dataset.name}:{config.dataset.train_split} has {counts.min()} '
                     f'examples of its smallest class; labels_per_class={need} needs {need}')
  for name in config.methods:
    with checks.under(_as_written(name)):
      task.check_task(cell_task(config, name, 0), cell_splits(splits, need, 0))
  if config.source and open_source:
    source_init(config, splits, 0)


def source_init(config, splits, seed):
  """init(variables) -> variables with the source run's leaves (but `dont_load`'s), or None
  without a source. The run is opened and checked to fit now; ValueError if it does not."""
  if not config.source:
    return None
  try:
    variables, _, step = load_pretrained(config.source, config.source_step)
    cfg = cell_task(config, config.methods[0], seed)
    model = build_model(cfg.model, methods.get(cfg.method.name).model_heads(
        cfg.method, splits.num_classes))
    fresh = jax.eval_shape(model.init, jax.random.key(0),
                           np.zeros((1,) + tuple(splits.image_shape), np.float32))
    transplant(variables, fresh, dont_load=tuple(config.dont_load))
  except (PretrainedError, TransplantError, ValueError) as e:
    raise ValueError(f'source run {config.source}: {e}') from None

  def init(fresh):
    return fresh if fresh is None else transplant(variables, fresh,
                                                  dont_load=tuple(config.dont_load))[0]

  init.step = step
  return init


def run_cell(trainer, config, splits, method, labels_per_class, seed, cell_dir, should_stop):
  """Trains one cell; its summary: the last evaluation (`test_accuracy`, `test_loss`,
  `validation_accuracy`), `selected_test_accuracy` at the step of the best validation
  accuracy (`selected_step`), and the number of labelled examples."""
  cell = cell_splits(splits, labels_per_class, seed)
  summary, _ = task.fit_task(trainer, cell_task(config, method, seed), cell_dir, cell,
                             init=source_init(config, splits, seed), summary_prefix='',
                             claim=False,
                             should_stop=should_stop,
                             desc=f'{method}/lpc{labels_per_class}_seed{seed}')
  rows = [r for r in writers.read_metrics(cell_dir)
          if r.get('split') == 'test' and 'validation_accuracy' in r]
  best = max(rows, key=lambda r: (r['validation_accuracy'], r['step']))
  return {**summary, 'labelled': len(cell.train), 'selected_step': int(best['step']),
          'selected_test_accuracy': float(best['test_accuracy'])}


def report(config, tables):
  """report.md of the sweep: the protocol and one table per reported number."""
  source = (f'every cell starts from the backbone of `{config.source}`' if config.source
            else 'every cell starts from scratch')
  t = config.task
  budget = f'{t.steps} steps' if t.get('steps', 0) else f'{t.epochs} epochs'
  return (f'# Semi-supervised: {config.dataset.name}\n\n'
          f'{config.dataset.name}:{config.dataset.train_split}, labels_per_class labelled '
          f'examples per class drawn per seed, every training image unlabelled; {source}; '
          f'{budget} of batch {t.batch_size} labelled (+ mu x that unlabelled) per cell. '
          f'Accuracy (%) on `{config.dataset.eval_split}`, mean +- std over seeds '
          f'{tuple(config.seeds)}.\n\n'
          + '\n\n'.join(f'## {title}\n\n{table}' for title, table in tables) + '\n')
