"""Transfer a source model to a target task: `python -m experiments.transfer --config=configs/digits_transfer.py`."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common, train as train_stage
from tlu.data import loader, sources, subsets
from tlu.evaluate.classify import classifier_metrics
from tlu.evaluate.features import extract_features
from tlu.models import build_model
from tlu.report import tables
from tlu.train import mesh as mesh_lib, objectives, optim, session
from tlu.train.state import TrainState
from tlu.train.step import accuracy_sums, make_eval_step, make_train_step
from tlu.transfer import freeze, strategies
from tlu.transfer.imprint import imprinted_head
from tlu.transfer.pretrained import PretrainedError, load_pretrained, source_config
from tlu.transfer.surgery import TransplantError, transplant


SWEEP_KEYS = ('strategies', 'labels_per_class', 'seeds')
HEAD_INITS = ('fresh', 'imprint')


class Transfer:
  """Everything shared by the cells of one sweep: source weights, model, data, compiled steps."""

  def __init__(self, config, source_dir, mesh):
    self.config, self.mesh = config, mesh
    ds = config.dataset
    self.src_vars, src_model, self.src_step = load_pretrained(source_dir, config.source_step)
    info = sources.dataset_info(ds.name, [ds.train_split, ds.eval_split], ds.data_dir)
    classes = tuple(ds.classes) or tuple(range(info.num_classes))
    self.model = build_model({**src_model, 'num_classes': len(classes), 'projector': None,
                              'domain_head': None, 'head_l2_scale': config.head_l2_scale})
    init = jax.jit(self.model.init)  # compiled once: eager init is slow on CPU
    self.fresh = lambda seed: init(jax.random.key(seed),
                                   jnp.zeros((1,) + subsets.input_shape(ds, info), jnp.float32))
    self.train_all = subsets.task_source(ds, ds.train_split)
    self.test = subsets.task_source(ds, ds.eval_split)
    eval_step = make_eval_step(accuracy_sums(self.model), mesh)
    self.evaluate = lambda s: classifier_metrics(eval_step, s, self.test, config.eval_batch_size,
                                                 mesh)
    self._steps = {}

  def load_source(self, variables):
    """The fresh target variables with the source's shared layers transplanted in."""
    return transplant(self.src_vars, variables, dont_load=tuple(self.config.dont_load),
                      adapters=tuple(self.config.adapters))

  def imprint(self, variables, view):
    """`variables` with the head imprinted from the view's features (tlu.transfer.imprint)."""
    feats, labels = extract_features(self.model, variables, view, self.config.eval_batch_size,
                                     self.mesh)
    head = imprinted_head(feats, labels, self.model.num_classes)
    return {**variables, 'params': {**variables['params'], 'head': head}}

  def trainer(self, strategy, num_steps):
    """(tx, loss_fn, compiled step) for a strategy, built once per sweep."""
    groups = strategies.groups(strategy, self.config.backbone_lr_mult, self.config.probe_lr_mult)
    key = (groups, num_steps)  # scratch and finetune share one compiled step
    if key not in self._steps:
      frozen = freeze.frozen_patterns(groups)
      params = self.fresh(0)['params']
      tx = freeze.masked_optimizer(lambda: optim.base_optimizer(self.config.optimizer, num_steps,
                                                        self.config.batch_size),
                                   params, groups)
      loss_fn = objectives.supervised(self.model, self.config.label_smoothing,
                                      train_stage.make_augment(self.config.augment),
                                      frozen=freeze.frozen_subtrees(frozen, params))
      keep = (lambda old, new: freeze.merge_frozen_stats(old, new, frozen)) if frozen else None
      self._steps[key] = (tx, loss_fn, make_train_step(loss_fn, tx, self.mesh, keep_stats=keep))
    return self._steps[key]

  def fit(self, cell_dir, strategy, variables, view, seed, num_steps):
    tx, loss_fn, step = self.trainer(strategy, num_steps)
    state = TrainState.create(variables, tx, seed)
    batches = loader.train_iterator(view, self.config.batch_size, seed=seed,
                                    process_index=jax.process_index(),
                                    process_count=jax.process_count())
    return session.fit(cell_dir, state, loss_fn, tx, batches, self.mesh, num_steps=num_steps,
                       evaluate=self.evaluate, log_every=max(num_steps // 5, 1),
                       checkpoint_every=num_steps, keep_checkpoints=1, train_step=step,
                       should_stop=common.preempted,
                       progress=self.config.progress, desc=os.path.basename(cell_dir))

  def cell(self, workdir, strategy, labels_per_class, seed):
    """Trains one (strategy, labels per class, seed) cell of `workdir`; returns its test accuracy."""
    cell_dir = os.path.join(workdir, strategy, f'lpc{labels_per_class}_seed{seed}')
    done = os.path.join(cell_dir, 'summary.json')
    if os.path.exists(done):
      return common.read_json(done)['test_accuracy']
    os.makedirs(cell_dir, exist_ok=True)
    view = self.train_all.subset(labels_per_class, seed)
    variables = self.fresh(seed)
    if strategies.loads_source(strategy):
      variables, _ = self.load_source(variables)
      if self.config.head_init == 'imprint':
        variables = self.imprint(variables, view)
    if strategy == 'lp_ft':
      state, _, stopped = self.fit(os.path.join(cell_dir, 'lp'), 'linear_probe', variables, view,
                                   seed, self.config.lp_steps)
      if stopped:  # fine-tuning must start from the finished probe, not a preempted one
        common.fail('preempted; re-run the same command to resume', common.EXIT_PREEMPTED)
      variables = jax.device_get(state.variables)
      strategy = 'finetune'
    state, metrics, stopped = self.fit(cell_dir, strategy, variables, view, seed, self.config.steps)
    if stopped:
      common.fail('preempted; re-run the same command to resume', common.EXIT_PREEMPTED)
    if jax.process_index() == 0:
      common.write_json(done, {'test_accuracy': metrics['accuracy'], 'labelled': len(view)})
    return metrics['accuracy']


def validate(config, check_source=True):
  """Every check that needs no compute: strategies, batch sizes, data, optimizer, source.

  check_source=False when the source run is made later by the same invocation (pipeline).
  """
  try:
    for s in config.strategies:
      strategies.check(s)
    optim.base_optimizer(config.optimizer, config.steps, config.batch_size)
    train_stage.make_augment(config.augment)
  except ValueError as e:
    raise common.ConfigError(str(e)) from None
  if config.head_init not in HEAD_INITS:
    raise common.ConfigError(f'head_init {config.head_init!r}: use one of {HEAD_INITS}')
  if config.head_l2_scale < 0:
    raise common.ConfigError(f'head_l2_scale must be >= 0 (0: plain head), not {config.head_l2_scale}')
  if config.head_init == 'imprint' and not config.head_l2_scale > 0:
    raise common.ConfigError('head_init=imprint needs head_l2_scale > 0 (a cosine head)')
  common.check_batch(config.batch_size)
  common.check_batch(config.eval_batch_size, 'eval_batch_size')
  if config.steps < 1 or ('lp_ft' in config.strategies and config.lp_steps < 1):
    raise common.ConfigError('steps (and lp_steps for lp_ft) must be >= 1')
  ds = config.dataset
  info = sources.dataset_info(ds.name, [ds.train_split, ds.eval_split], ds.data_dir)
  unknown = sorted(set(ds.classes) - set(range(info.num_classes)))
  if unknown:
    raise common.ConfigError(f'dataset.classes {unknown} are not labels of {ds.name}')
  _check_class_sizes(config, info)
  if config.source and check_source:
    try:
      source_config(config.source)
    except PretrainedError as e:
      raise common.ConfigError(str(e)) from None


def _check_class_sizes(config, info):
  """Every class of the task has the examples its cells draw (and one to imprint from)."""
  ds = config.dataset
  need = max([k for k in config.labels_per_class if k > 0], default=0)
  if config.head_init == 'imprint':
    need = max(need, 1)
  if not need:
    return
  labels = subsets.labels_of(sources.open_source(ds.name, ds.train_split, ds.data_dir))
  counts = {c: int(np.sum(labels == c)) for c in (ds.classes or range(info.num_classes))}
  short = {c: n for c, n in counts.items() if n < need}
  if short:
    imprint = ' and an imprinted head' if config.head_init == 'imprint' else ''
    raise common.ConfigError(
        f'{ds.name}:{ds.train_split} has too few examples of classes {short} (class: count): '
        f'labels_per_class={tuple(config.labels_per_class)}{imprint} need {need} per class')


def prepare(config, workdir):
  """Checks without compute; returns the source workdir (trained later if it is ours)."""
  validate(config)
  common.check_workdir(workdir, config, SWEEP_KEYS)
  source_dir = config.source or os.path.join(workdir, 'source')
  if not config.source:
    train_stage.validate(config.source_task, source_dir)
  return source_dir


def open_run(config, source_dir, mesh):
  """The sweep's shared state with the source loaded and checked to fit (ConfigError if not)."""
  try:
    runner = Transfer(config, source_dir, mesh)
    _, report = runner.load_source(runner.fresh(0))
  except (PretrainedError, TransplantError, ValueError) as e:
    raise common.ConfigError(str(e)) from None
  return runner, report


def sweep(config, workdir, runner, report):
  """Runs every (strategy, labels per class, seed) cell; returns {(strategy, lpc): [accs]}."""
  print(report.table())
  if jax.process_index() == 0:
    common.write_json(os.path.join(workdir, 'transplant.json'), report.to_json())
  results = {}
  for strategy in config.strategies:
    for lpc in config.labels_per_class:
      accs = [runner.cell(workdir, strategy, lpc, seed) for seed in config.seeds]
      results[(strategy, lpc)] = accs
      print(f'{strategy:>12} labels/class={lpc or "all":>3}: '
            f'{100 * np.mean(accs):.1f} +- {100 * np.std(accs):.1f} ({len(accs)} seeds)')
  return results


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'transfer')
  source_dir = prepare(config, workdir)
  mesh = mesh_lib.make_mesh()
  if config.source:  # a given source must load and fit before anything is written
    opened = open_run(config, source_dir, mesh)
  common.claim_workdir(workdir, config, SWEEP_KEYS)
  if not config.source:
    if not os.path.exists(os.path.join(source_dir, 'summary.json')):
      print(f'training the source task in {source_dir}')
      train_stage.train(config.source_task, source_dir)
    opened = open_run(config, source_dir, mesh)
  results = sweep(config, workdir, *opened)
  summary = {f'{s}/lpc{k}/test_accuracy': float(np.mean(v)) for (s, k), v in results.items()}
  summary.update({f'{s}/lpc{k}/test_accuracy_std': float(np.std(v))
                  for (s, k), v in results.items()})
  if jax.process_index() == 0:
    common.write_json(os.path.join(workdir, 'summary.json'), summary)
    table = tables.mean_std_table(results, config.strategies, config.labels_per_class,
                                  row_title='strategy', col_title='labels per class')
    common.write_text(os.path.join(workdir, 'report.md'), _report(config, source_dir, table))
  print(f'report: {os.path.join(workdir, "report.md")}')


def _task(ds):
  return f'{ds.name} classes {tuple(ds.classes) if ds.classes else "all"}'


def _report(config, source_dir, table):
  scratch_only = set(config.strategies) == {'scratch'}
  return (f'# Transfer: {"a given source run" if config.source else _task(config.source_task.dataset)}'
          f' -> {_task(config.dataset)}\n\n'
          f'Source run: `{source_dir}`'
          f'{" (its architecture only: scratch loads no weights)" if scratch_only else ""}'
          f'. Target test accuracy (%), mean +- std over seeds '
          f'{tuple(config.seeds)}; {config.steps} steps per run'
          f'{f", LP-FT probes {config.lp_steps} steps first" if "lp_ft" in config.strategies else ""}'
          f'{f"; head on L2-normalised features x {config.head_l2_scale:g}" if config.head_l2_scale else ""}'
          f'{", imprinted from the labelled examples" if config.head_init == "imprint" else ""}.'
          f'\n\n{table}\n')


if __name__ == '__main__':
  common.launch(main, 'configs/digits_transfer.py')
