"""The cells of an adaptation sweep: which data and initial weights each method gets.

Config (configs/digits_to_digits_m.py): `source_task` (a supervised task on the
labelled source), `target` (a dataset config), `methods`, `seeds`, one task block
per trained method, `target_oracle` (a supervised task without its dataset).
Source-free methods (`Method.from_source`) get only the target's unlabelled
training images and the source run's weights; `paired` methods get the labelled
source and the unlabelled target. The target's labels are read for the test split
(and the diagnostics a method logs as such) only.
"""

import dataclasses

import jax
import numpy as np

from tlu import evaluators, methods
from tlu.evaluators import classification
from tlu.models import build_model
from tlu.train import task, workdir as workdir_lib, writers
from tlu.train.state import TrainState
from tlu.data import subsets
from tlu.transfer.pretrained import PretrainedError, load_pretrained
from tlu.transfer.surgery import TransplantError, transplant

BASELINES = ('source_only', 'target_oracle')
EVAL = {'classification': {}}


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
    self.target_validation = subsets.task_source(tgt, split) if split else None
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
                         image_shape=t.image_shape)
    return task.Splits(train=self.source_splits.train, target=t.train, test=t.test,
                       num_classes=t.num_classes, image_shape=t.image_shape)


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


def oracle_task(config, seed):
  return _with(config.target_oracle, dataset=config.target.copy_and_resolve_references(),
               seed=seed)


def cell_task(config, method, seed):
  """The task of a trained method's cell: its block, the source's model, this seed."""
  return _with(config[method], model=config.source_task.model.copy_and_resolve_references(),
               seed=seed, eval_batch_size=config.eval_batch_size, evaluators=EVAL,
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


def needs_source(config):
  return any(m == 'source_only' or (m not in BASELINES and
                                    methods.get(config[m].method.name).from_source)
             for m in config.methods)


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

  init.model, init.step, init.directory = model, step, directory
  return init


def classification_head(data):
  from tlu.models import heads  # pylint: disable=import-outside-toplevel
  return heads.classifier(data.oracle_splits.num_classes)


def run_cell(trainer, config, data, workdir, method, seed, cell_dir, should_stop):
  """Trains (or scores) one cell; returns its summary ({'target_test_accuracy', ...})."""
  desc = f'{method}/seed{seed}'
  if method == 'source_only':
    init = source_init(config, data, workdir, seed)
    variables = init(jax.jit(init.model.init)(jax.random.key(seed), np.zeros(
        (1,) + tuple(data.oracle_splits.image_shape), np.float32)))
    ctx = evaluators.Context(model=init.model, mesh=trainer.mesh, test=data.oracle_splits.test,
                             num_classes=data.oracle_splits.num_classes,
                             batch_size=config.eval_batch_size)
    metrics = classification.Evaluator(ctx)(TrainState.create(variables, _NoUpdates, seed))
    return {'target_test_accuracy': metrics['accuracy'], 'target_test_loss': metrics['loss'],
            'source_step': int(init.step)}
  if method == 'target_oracle':
    cfg, splits = oracle_task(config, seed), data.oracle_splits
    summary, _ = task.fit_task(trainer, cfg, cell_dir, splits, claim=False,
                               evaluate=_evaluate(trainer, cfg, splits, data.target_validation),
                               should_stop=should_stop, desc=desc)
    return selected(cell_dir, {**summary, 'target_test_accuracy': summary['test_accuracy']})
  cfg = cell_task(config, method, seed)
  method_cls = methods.get(cfg.method.name)
  splits = data.splits_for(method_cls)
  init = source_init(config, data, workdir, seed) if method_cls.from_source else None
  summary, _ = task.fit_task(trainer, cfg, cell_dir, splits, init=init,
                             evaluate=_evaluate(trainer, cfg, splits, data.target_validation),
                             summary_prefix='target_test_', claim=False,
                             should_stop=should_stop, desc=desc)
  return selected(cell_dir, summary)


def _evaluate(trainer, cfg, splits, validation):
  """state -> the target test split's {'accuracy', 'loss'}, plus 'validation_accuracy' on
  the labelled target `validation` split when there is one (None: test only)."""
  ctx = trainer.context(cfg, splits)
  test = classification.Evaluator(ctx)
  if validation is None:
    return test
  val = classification.Evaluator(dataclasses.replace(ctx, test=validation, _features={}))
  return lambda state: {**test(state), 'validation_accuracy': val(state)['accuracy']}


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


class _NoUpdates:
  """A stand-in optimizer for scoring a fixed model through TrainState."""

  @staticmethod
  def init(params):
    del params
    return ()


def summarize(results):
  """{(method, None): [cell summaries]} -> flat summary; gap closed when both bounds ran.

  gap_closed = (acc - source_only) / (target_oracle - source_only), on seed means.
  """
  accs = {m: [c['target_test_accuracy'] for c in cells] for (m, _), cells in results.items()}
  summary = {}
  for method, values in accs.items():
    summary[f'{method}/target_test_accuracy'] = float(np.mean(values))
    summary[f'{method}/target_test_accuracy_std'] = float(np.std(values))
    chosen = [c['selected_target_test_accuracy'] for c in results[(method, None)]
              if 'selected_target_test_accuracy' in c]
    if chosen and len(chosen) == len(values):
      summary[f'{method}/selected_target_test_accuracy'] = float(np.mean(chosen))
      summary[f'{method}/selected_target_test_accuracy_std'] = float(np.std(chosen))
  if len(accs) == 1:
    summary['target_test_accuracy'] = float(np.mean(next(iter(accs.values()))))
  if 'source_only' in accs and 'target_oracle' in accs:
    low, high = np.mean(accs['source_only']), np.mean(accs['target_oracle'])
    for method in accs:
      if method not in BASELINES and high > low:
        summary[f'{method}/gap_closed'] = float((np.mean(accs[method]) - low) / (high - low))
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
