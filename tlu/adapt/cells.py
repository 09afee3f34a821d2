"""The cells of an adaptation sweep: which data and initial weights each method gets.

Config (configs/digits_to_digits_m.py): `source_task` (a supervised task on the
labelled source), `target` (a dataset config), `methods`, `seeds`, one task block
per trained method, `target_oracle` (a supervised task without its dataset).
Every cell is a task config: `source_only` is the source task on the target, scored
as loaded (no step trained); `target_oracle` trains on the labelled target; a
source-free method (`source_free`) gets only the target's unlabelled training
images and the source run's weights, a `paired` one the labelled source and the
unlabelled target (and, with `Method.from_source` as ADDA, the source run's weights).
Each cell's evaluations (`cell_evals`) score the target test split,
with `target_validation_split` the labelled target validation split (the `validation`
instance), and every validator of `validators` (`tlu.adapt.validators`, no target labels:
the target train split as 'target_train', the labelled source splits as 'source_train'
and, with `source_validation_split`, 'source_validation'). The target's labels are read
for these test / validation accuracies (and the diagnostics a method logs as such) only;
`selection.validator` names the validator whose pick is the "selected without target
labels" number (`tlu.adapt.selection`).
"""

import jax
import numpy as np

from tlu import checks, methods
from tlu.adapt import selection, validators as validators_lib
from tlu.models import build_model
from tlu.train import sweep, task, workdir as workdir_lib, writers
from tlu.data import subsets
from tlu.transfer.pretrained import PretrainedError, load_pretrained
from tlu.transfer.surgery import TransplantError, transplant

BASELINES = ('source_only', 'target_oracle')
RANGES = {'eval_batch_size': checks.POSITIVE_INT}   # the sweep's own keys


def where(name):
  """The config block a cell's values come from, as a key prefix."""
  return 'source_task.' if name == 'source_only' else f'{name}.'


def check_values(config):
  """The ranges of the sweep's own keys and of every cell's task config, before any data is
  opened; RangeError naming the key as written in the sweep's config."""
  checks.check_values(config, RANGES)
  checks.check_values(config.target, subsets.RANGES, 'target.')
  with checks.under('source_task.'):
    task.check_values(config.source_task)
  for name in config.methods:
    if name not in BASELINES or name == 'target_oracle':
      with checks.under(where(name)):
        task.check_values(oracle_task(config, 0) if name == 'target_oracle' else
                          cell_task(config, name, 0))


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
    extra = {'validation': subsets.task_source(tgt, split)} if split else {}
    # What validators read: the target train images (their labels never), the labelled source.
    extra.update(target_train=self.oracle_splits.train, source_train=self.source_splits.train)
    split = config.get('source_validation_split', '')
    if split:
      extra['source_validation'] = subsets.task_source(src, split)
    self.oracle_splits.extra = extra
    s, t = self.source_splits, self.oracle_splits
    if (s.num_classes, tuple(s.image_shape)) != (t.num_classes, tuple(t.image_shape)):
      raise ValueError(f'source {src.name} ({s.num_classes} classes, images {s.image_shape}) and '
                       f'target {tgt.name} ({t.num_classes} classes, images {t.image_shape}) '
                       'must have the same classes and input shape (set dataset.image_size / '
                       'channels to fit them)')

  def splits_for(self, method_cls):
    """Source-free: the unlabelled target only; otherwise labelled source + target images."""
    t = self.oracle_splits
    if source_free(method_cls):
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
  """The evaluations of every cell: target test accuracy and loss ('accuracy', 'loss'); and,
  unless validation=False (source_only, scored as loaded), with a `target_validation_split`
  its accuracy ('validation_accuracy') and each validator of `validators` ('<name>_score')."""
  evals = {'test': dict(type='classification', splits=('test',))}
  if validation and config.get('target_validation_split', ''):
    evals['validation'] = dict(type='classification', splits=('validation',),
                               prefix='validation_', loss=False)
  for name in config.get('validators', ()) if validation else ():
    evals[f'validator_{name}'] = dict(type='validator', name=name,
                                      prefix=selection.metric(name)[:-len('score')])
  return evals


def check_validators(config):
  """`validators` are known names, the ones reading source labels have a
  `source_validation_split`, and `selection.validator` is '' or one of them."""
  names = tuple(config.get('validators', ()))
  for name in names:
    if name not in validators_lib.NAMES:
      raise ValueError(f'validators: {name!r} is not a validator (validators: '
                       f'{", ".join(validators_lib.NAMES)})')
    if name in validators_lib.LABELLED and not config.get('source_validation_split', ''):
      raise ValueError(f'validators: {name} reads a labelled source validation split; set '
                       'source_validation_split (or leave it out of validators)')
  chosen = config.get('selection', {}).get('validator', '')
  if chosen and chosen not in names:
    raise ValueError(f'selection.validator={chosen!r} must be one of validators '
                     f'({", ".join(names) or "none"}) or empty')


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


def source_free(method_cls):
  """Whether the method trains on the target alone: it starts from the source run and reads
  no paired batches (SHOT, AaD; ADDA starts from the source run and reads paired ones)."""
  return method_cls.from_source and method_cls.inputs != 'paired'


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
  return selected(cell_dir, summary, config.get('validators', ()),
                  config.get('selection', {}).get('validator', ''))


def selected(cell_dir, summary, validator_names=(), chosen=''):
  """summary + the step-selected target test accuracies of the cell.

  Over the cell's evaluations (metrics.jsonl rows of split 'test'): `selected_step` has the
  best target validation accuracy (rows with a 'validation_accuracy'; the latest such step
  on ties) and `selected_target_test_accuracy` is the test accuracy there; each validator of
  `validator_names` picks its best-scored step ('<name>_selected_step',
  '<name>_selected_target_test_accuracy', `tlu.adapt.selection.cell_picks`); `chosen`'s
  pick is also `validator_selected_target_test_accuracy` (selected without target labels);
  `best_target_test_accuracy` is the best test accuracy of any of these evaluations (the
  oracle-selected number, read off the test labels: an upper bound, not a result).
  Unchanged when no evaluation scored a validation split or a validator.
  """
  rows = [r for r in writers.read_metrics(cell_dir) if r.get('split') == 'test']
  out = dict(summary)
  labelled = [r for r in rows if 'validation_accuracy' in r]
  if labelled:
    best = max(labelled, key=lambda r: (r['validation_accuracy'], r['step']))
    out.update(selected_step=int(best['step']),
               selected_target_test_accuracy=float(best['accuracy']))
  picks = selection.cell_picks(rows, validator_names)
  out.update(picks)
  if chosen and f'{chosen}_selected_target_test_accuracy' in picks:
    out['validator_selected_target_test_accuracy'] = picks[
        f'{chosen}_selected_target_test_accuracy']
  scored = [r for r in rows if 'validation_accuracy' in r or
            any(selection.metric(n) in r for n in validator_names)]
  if scored:
    out['best_target_test_accuracy'] = float(max(r['accuracy'] for r in scored))
  return out


def checkpoint_rows(config, workdir):
  """The test-split evaluations (metrics.jsonl rows) of every trained adaptation cell of the
  sweep (baselines left out): the checkpoints the validators' correlations run over."""
  rows = []
  for name in config.methods:
    if name in BASELINES:
      continue
    for seed in config.seeds:
      cell_dir = workdir_lib.path(workdir, name, f'seed{seed}')
      if cell_dir.is_dir():
        rows += [r for r in writers.read_metrics(str(cell_dir)) if r.get('split') == 'test']
  return rows


def selection_metrics(validator_names=()):
  """The cell summary names `summarize` averages: last step, labelled-validation-selected,
  the chosen validator's, oracle-selected and each validator's pick."""
  return ('target_test_accuracy', 'selected_target_test_accuracy',
          'validator_selected_target_test_accuracy', 'best_target_test_accuracy',
          *(f'{n}_selected_target_test_accuracy' for n in validator_names))


def summarize(results, rows=(), validator_names=()):
  """{(method, None): [cell summaries]} -> the sweep's summary (`tlu.train.sweep.summarize` of
  each of `selection_metrics`), each validator's weighted Spearman correlation with the
  target test accuracy over `rows` (`checkpoint_rows`; '<name>/weighted_spearman') and, when
  both bounds ran, gap_closed = (acc - source_only) / (target_oracle - source_only) on seed
  means."""
  summary = {}
  for metric in selection_metrics(validator_names):
    summary.update(sweep.summarize(results, metric))
  summary.update(selection.sweep_correlations(rows, validator_names))
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
  """report.md of the sweep (`tlu.adapt.report`)."""
  from tlu.adapt import report as report_lib  # pylint: disable=import-outside-toplevel
  return report_lib.report(config, results, summary)
