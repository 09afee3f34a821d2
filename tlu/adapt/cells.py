"""The cells of an adaptation sweep: which data and initial weights each method gets.

Config (configs/digits_to_digits_m.py): `source_task` (a supervised task on the
labelled source), `target` (a dataset config), `methods`, `seeds`, one task block
per trained method, `target_oracle` (a supervised task without its dataset).
Every cell is a task config: `source_only` is the source task on the target, scored
as loaded (no step trained); `target_oracle` trains on the labelled target; a
source-free method (`Method.from_source`) gets only the target's unlabelled training
images and the source run's weights, a `paired` one the labelled source and the
unlabelled target. Each cell's evaluations (`cell_evals`) score the target test split
and, with `target_validation_split`, the labelled target validation split (the
`validation` instance). The target's labels are read for these (and the diagnostics a
method logs as such) only.
"""

import jax
import numpy as np

from tlu import methods
from tlu.models import build_model
from tlu.train import sweep, task, workdir as workdir_lib, writers
from tlu.data import subsets
from tlu.transfer.pretrained import PretrainedError, load_pretrained
from tlu.transfer.surgery import TransplantError, transplant

BASELINES = ('source_only', 'target_oracle')


class AdaptData:
  """The splits of a sweep, opened (and checked to fit each other) once."""

  def __init__(self, config):
    src, tgt = config.source_task.dataset, config.target
    if src.classes or tgt.classes:
      raise ValueError('adaptation uses every class: leave dataset.classes empty')
    self.source_splits = task.task_splits(src)
    self.oracle_splits = task.task_splits(tgt)
    # Labelled target validation split (config.target_validation_split, '' = none): each
    # trained cell also scores it, and the report selects the step by it.
    split = config.get('target_validation_split', '')
    if split:
      self.oracle_splits.extra = {'validation': subsets.task_source(tgt, split)}
    s, t = self.source_splits, self.oracle_splits
    if (s.num_classes, tuple(s.image_shape)) != (t.num_classes, tuple(t.image_shape)):
      raise ValueError(f'source {src.name} ({s.num_classes} classes, images {s.image_shape}) and '
                       f'target {tgt.name} ({t.num_classes} classes, images {t.image_shape}) '
                       'must have the same classes and input shape (set dataset.image_size / '
                       'channels to fit them)')

  def splits_for(self, method_cls):
    """Source-free: the unlabelled target only; otherwise labelled source + target images."""
    t = self.oracle_splits
    if method_cls.from_source:
      return task.Splits(train=t.train, test=t.test, num_classes=t.num_classes,
                         image_shape=t.image_shape, extra=t.extra)
    return task.Splits(train=self.source_splits.train, target=t.train, test=t.test,
                       num_classes=t.num_classes, image_shape=t.image_shape, extra=t.extra)

  def cell(self, config, name, seed):
    """(task config, splits) of the cell `name` at `seed`."""
    if name == 'target_oracle':
      return oracle_task(config, seed), self.oracle_splits
    if name == 'source_only':   # the source model's task, on the target, trained no further
      return _with(config.source_task, dataset=config.target.copy_and_resolve_references(),
                   seed=seed, eval_batch_size=config.eval_batch_size,
                   evals=cell_evals(config, validation=False)), self.oracle_splits
    cfg = cell_task(config, name, seed)
    return cfg, self.splits_for(methods.get(cfg.method.name))


def _with(cfg, **values):
  cfg = cfg.copy_and_resolve_references()
  with cfg.unlocked():
    for k, v in values.items():
      cfg[k] = v
  return cfg


def source_dir(config, workdir, seed):
  if config.source:
    return config.source.replace('{seed}', str(seed))
  return str(workdir_lib.path(workdir, 'source', f'seed{seed}'))


def source_task(config, seed):
  return _with(config.source_task, seed=seed)


def cell_evals(config, validation=True):
  """The evaluations of every cell: target test accuracy and loss ('accuracy', 'loss'); with
  a `target_validation_split`, its accuracy ('validation_accuracy')."""
  evals = {'test': dict(type='classification', splits=('test',))}
  if validation and config.get('target_validation_split', ''):
    evals['validation'] = dict(type='classification', splits=('validation',),
                               prefix='validation_', loss=False)
  return evals


def oracle_task(config, seed):
  return _with(config.target_oracle, dataset=config.target.copy_and_resolve_references(),
               seed=seed, evals=cell_evals(config))


def cell_task(config, method, seed):
  """The task of a trained method's cell: its block, the source's model, this seed."""
  return _with(config[method], model=config.source_task.model.copy_and_resolve_references(),
               seed=seed, eval_batch_size=config.eval_batch_size, evals=cell_evals(config),
               progress=config.progress)


def _is_task(value):
  return hasattr(value, 'keys') and 'method' in value


def check_methods(config):
  """Every name in `methods` is a baseline or a config block naming a registered method."""
  if not config.methods or not config.seeds:
    raise ValueError('methods and seeds must each name at least one')
  for m in config.methods:
    if m not in BASELINES and not _is_task(config.get(m)):
      blocks = [k for k in config if k not in BASELINES and _is_task(config[k])]
      raise ValueError(f'methods: {m!r} has no config block with a `method` (blocks: '
                       f'{", ".join(sorted(blocks))}; baselines: {", ".join(BASELINES)})')
    if m not in BASELINES:
      methods.get(config[m].method.name)


def from_source(config, name):
  """Whether the cell `name` starts from the source run's weights."""
  return name == 'source_only' or (name not in BASELINES and
                                   methods.get(config[name].method.name).from_source)


def needs_source(config):
  return any(from_source(config, m) for m in config.methods)


def source_init(config, data, workdir, seed):
  """init(variables) -> variables with every leaf from the seed's source run (strict).

  The run is loaded (and checked to fit) when this is called; ValueError if it does not.
  """
  directory = source_dir(config, workdir, seed)
  try:
    src_vars, model_cfg, step = load_pretrained(directory, config.source_step)
    model = build_model(model_cfg, {'head': classification_head(data)})
    fresh = jax.jit(model.init)(jax.random.key(seed), np.zeros((1,) + tuple(
        data.oracle_splits.image_shape), np.float32))
    transplant(src_vars, fresh)
  except (PretrainedError, TransplantError, ValueError) as e:
    raise ValueError(f'source run {directory}: {e}') from None

  def init(variables):
    return variables if variables is None else transplant(src_vars, variables)[0]

  init.step, init.directory = step, directory
  return init


def classification_head(data):
  from tlu.models import heads  # pylint: disable=import-outside-toplevel
  return heads.classifier(data.oracle_splits.num_classes)


def run_cell(trainer, config, data, workdir, name, seed, cell_dir, should_stop):
  """Trains (or, for source_only, scores as loaded) one cell; returns its summary
  ({'target_test_accuracy', ...})."""
  cfg, splits = data.cell(config, name, seed)
  init = source_init(config, data, workdir, seed) if from_source(config, name) else None
  if name == 'source_only':
    metrics = trainer.evaluations(cfg, splits)(trainer.init_state(cfg, splits, init))
    return {'target_test_accuracy': metrics['accuracy'], 'target_test_loss': metrics['loss'],
            'source_step': int(init.step)}
  summary, _ = task.fit_task(trainer, cfg, cell_dir, splits, init=init,
                             summary_prefix='target_test_', claim=False,
                             should_stop=should_stop, desc=f'{name}/seed{seed}')
  return selected(cell_dir, summary)


def selected(cell_dir, summary):
  """summary + the validation-selected and oracle-selected target test accuracies.

  Over the cell's evaluations (metrics.jsonl rows of split 'test' that carry a
  'validation_accuracy'): `selected_step` has the best target validation accuracy
  (the latest such step on ties) and `selected_target_test_accuracy` is the test accuracy
  there; `best_target_test_accuracy` is the best test accuracy of any evaluation (the
  oracle-selected number, read off the test labels: an upper bound, not a result).
  Unchanged when no evaluation scored a validation split.
  """
  rows = [r for r in writers.read_metrics(cell_dir)
          if r.get('split') == 'test' and 'validation_accuracy' in r]
  if not rows:
    return summary
  best = max(rows, key=lambda r: (r['validation_accuracy'], r['step']))
  return {**summary, 'selected_step': int(best['step']),
          'selected_target_test_accuracy': float(best['accuracy']),
          'best_target_test_accuracy': float(max(r['accuracy'] for r in rows))}


def summarize(results):
  """{(method, None): [cell summaries]} -> the sweep's summary (`tlu.train.sweep.summarize` of
  the target test accuracy, last step and validation-selected) and, when both bounds ran,
  gap_closed = (acc - source_only) / (target_oracle - source_only) on seed means."""
  summary = {}
  for metric in ('target_test_accuracy', 'selected_target_test_accuracy'):
    summary.update(sweep.summarize(results, metric))
  accs = {m: np.mean([c['target_test_accuracy'] for c in cells]) for (m, _), cells in
          results.items()}
  if len(accs) == 1:
    summary['target_test_accuracy'] = float(next(iter(accs.values())))
  low, high = accs.get('source_only'), accs.get('target_oracle')
  if low is not None and high is not None and high > low:
    summary.update({f'{m}/gap_closed': float((acc - low) / (high - low))
                    for m, acc in accs.items() if m not in BASELINES})
  return summary


def report(config, results, summary):
  """report.md: the method x seed table of target test accuracy, times, gap closed."""
  seeds = tuple(config.seeds)
  lines = ['| method | ' + ' | '.join(f'seed {s}' for s in seeds) +
           ' | mean ± std | validation-selected | wall time per seed (s) |',
           '|---|' + '---|' * (len(seeds) + 3)]
  for (method, _), cells in results.items():
    accs = [c['target_test_accuracy'] for c in cells]
    times = [c.get('wall_time_s', float('nan')) for c in cells]
    chosen = summary.get(f'{method}/selected_target_test_accuracy')
    chosen = '' if chosen is None else (
        f'{100 * chosen:.1f} ± {100 * summary[f"{method}/selected_target_test_accuracy_std"]:.1f}')
    lines.append(f'| {method} | ' + ' | '.join(f'{100 * a:.1f}' for a in accs) +
                 f' | {100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f} | {chosen} | '
                 f'{np.mean(times):.0f} |')
  gaps = [f'{k.split("/")[0]}: {100 * v:.0f}%' for k, v in summary.items()
          if k.endswith('/gap_closed')]
  source = config.source or '<workdir>/source/seed<s>'
  trained = ', '.join(f'{m} (tlu/methods/{config[m].method.name}.py)'
                      for m in config.methods if m not in BASELINES)
  return (f'# Domain adaptation: {config.source_task.dataset.name} -> {config.target.name}\n\n'
          f'Target test accuracy (%) on `{config.target.name}:{config.target.eval_split}`; '
          f'the target `{config.target.train_split}` split is used without labels. '
          'Per seed: the last step; validation-selected: the step whose target accuracy on '
          f'the labelled `{config.get("target_validation_split") or "-"}` split is best. '
          f'Source runs: `{source}`. Trained methods: {trained or "none"}.\n\n' +
          '\n'.join(lines) + '\n' +
          (f'\nGap closed between source_only and target_oracle: {", ".join(gaps)}.\n'
           if gaps else ''))
