"""Unsupervised domain adaptation: `python -m experiments.adapt --config=configs/digits_to_digits_m.py[:method]`.

Every (method, seed) is a cell in <workdir>/<method>/seed<s> with its own
summary.json ({'target_test_accuracy', ...}) and, for the methods that train,
metrics.jsonl and checkpoints; a finished cell is not retrained and an
interrupted one resumes. SHOT's cells log the pseudo-labels' accuracy (a
diagnostic against target train labels that nothing else uses) as split
'target_train'. Source models are
train-stage runs in <workdir>/source/seed<s> unless `--config.source` names one.
The workdir's summary.json and report.md hold the method x seed table.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common, train as train_stage
from tlu.adapt import dann as dann_lib, shot as shot_lib
from tlu.data import loader, sources, subsets
from tlu.evaluate.classify import classifier_metrics
from tlu.evaluate.features import extract_features
from tlu.models import build_model
from tlu.models.model import Model
from tlu.train import mesh as mesh_lib, optim, session
from tlu.train.state import TrainState
from tlu.train.step import accuracy_sums, make_eval_step, make_train_step
from tlu.transfer import freeze
from tlu.transfer.pretrained import PretrainedError, load_pretrained, source_config
from tlu.transfer.surgery import TransplantError, transplant

METHODS = ('source_only', 'dann', 'shot', 'target_oracle')
NEEDS_SOURCE = ('source_only', 'shot')
SWEEP_KEYS = ('methods', 'seeds')
SHOT_GROUPS = (('head/.*', None),)  # the source hypothesis is frozen


# ----------------------------------------------------------------------------- data


class _ImagesWithIndex:
  """Random-access {'image', 'index'} view of a source: its labels are never read."""

  def __init__(self, source):
    self.source = source

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    return {'image': self.source[int(i)]['image'], 'index': np.int64(i)}


class PseudoLabelledBatches:
  """Target batches {'image', 'pseudo_label'}: the current label of each image is added on the host.

  `labels` is replaced between epochs. The checkpointed state (grain's bytes
  protocol for non-grain iterators) holds the inner iterator's position *and* the
  labels in use, so a resumed run trains on exactly the labels it had.
  """

  def __init__(self, inner, labels):
    self.inner, self.labels = inner, np.asarray(labels)

  def __iter__(self):
    return self

  def __next__(self):
    batch = next(self.inner)
    batch['pseudo_label'] = self.labels[batch.pop('index')].astype(np.int32)
    return batch

  def get_state(self):
    return json.dumps({'data': self.inner.get_state(),
                       'pseudo_labels': self.labels.tolist()}).encode()

  def set_state(self, state):
    state = json.loads(state)
    self.inner.set_state(state['data'])
    self.labels = np.asarray(state['pseudo_labels'])

  def start_prefetch(self):
    if hasattr(self.inner, 'start_prefetch'):
      self.inner.start_prefetch()


# ----------------------------------------------------------------------------- configs


def source_dir(config, workdir, seed):
  """The seed's source run: `config.source` ('{seed}' replaced) or <workdir>/source/seed<s>."""
  if config.source:
    return config.source.replace('{seed}', str(seed))
  return os.path.join(workdir, 'source', f'seed{seed}')


def source_task(config, seed):
  """The train-stage config of the seed's source run."""
  cfg = config.source_task.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.seed = seed
  return cfg


def oracle_task(config, seed):
  """The train-stage config of the supervised run on the labelled target (`config.target`)."""
  cfg = config.target_oracle.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.dataset = config.target.copy_and_resolve_references()
    cfg.seed = seed
  return cfg


def validate(config, workdir):
  """Every check that needs no compute; returns the target DatasetInfo."""
  unknown = [m for m in config.methods if m not in METHODS]
  if unknown or not config.methods:
    raise common.ConfigError(f'unknown methods {unknown}; use some of {METHODS}')
  if not config.seeds:
    raise common.ConfigError('seeds is empty; give at least one seed')
  common.check_batch(config.eval_batch_size, 'eval_batch_size')
  common.check_batch(config.dann.batch_size, 'dann.batch_size')
  common.check_batch(config.shot.batch_size, 'shot.batch_size')
  common.check_workdir(workdir, config, SWEEP_KEYS)
  tgt, src = config.target, config.source_task.dataset
  info = sources.dataset_info(tgt.name, [tgt.train_split, tgt.eval_split], tgt.data_dir)
  src_info = sources.dataset_info(src.name, [src.train_split], src.data_dir)
  src_shape, tgt_shape = subsets.input_shape(src, src_info), subsets.input_shape(tgt, info)
  if (src_info.num_classes, src_shape) != (info.num_classes, tgt_shape):
    raise common.ConfigError(
        f'source {src.name} ({src_info.num_classes} classes, images {src_shape}) and '
        f'target {tgt.name} ({info.num_classes} classes, images {tgt_shape}) must have '
        'the same classes and input shape (set dataset.image_size / channels to fit them)')
  if src.classes or tgt.classes:
    raise common.ConfigError('adaptation uses every class: leave dataset.classes empty')
  try:
    for name in (config.dann.augment, config.shot.augment):
      train_stage.make_augment(name)
    build_model({**config.source_task.model.to_dict(), 'num_classes': info.num_classes,
                 'domain_head': tuple(config.dann.domain_head)})
    optim.base_optimizer(config.dann.optimizer, 1)
    optim.base_optimizer(config.shot.optimizer, 1)
  except ValueError as e:
    raise common.ConfigError(str(e)) from None
  if config.dann.batch_norm not in dann_lib.BATCH_NORM:
    raise common.ConfigError(f'unknown dann.batch_norm {config.dann.batch_norm!r}; use one of '
                             f'{dann_lib.BATCH_NORM}')
  if config.shot.epochs < 1 or config.dann.steps < 1:
    raise common.ConfigError('shot.epochs and dann.steps must be >= 1')
  if config.shot.steps_per_epoch < 0 or config.shot.cluster_rounds < 0:
    raise common.ConfigError('shot.steps_per_epoch (0: one pass) and shot.cluster_rounds '
                             'must be >= 0')
  if not config.dann.domain_head or config.dann.domain_head[-1] != 1:
    raise common.ConfigError(f'dann.domain_head {tuple(config.dann.domain_head)}: the widths of '
                             'the domain classifier must end in 1 (one logit: source vs target)')
  for seed in config.seeds:
    if any(m in NEEDS_SOURCE for m in config.methods):
      if config.source:
        try:
          source_config(source_dir(config, workdir, seed))
        except PretrainedError as e:
          raise common.ConfigError(str(e)) from None
      else:
        train_stage.validate(source_task(config, seed), source_dir(config, workdir, seed))
    if 'target_oracle' in config.methods:
      train_stage.validate(oracle_task(config, seed), _cell_dir(workdir, 'target_oracle', seed))
  return info


def _cell_dir(workdir, method, seed):
  return os.path.join(workdir, method, f'seed{seed}')


# ----------------------------------------------------------------------------- the sweep


class Adaptation:
  """What the cells of one sweep share: data sources, evaluators, compiled steps."""

  def __init__(self, config, workdir, info, mesh):
    self.config, self.workdir, self.mesh = config, workdir, mesh
    tgt, src = config.target, config.source_task.dataset
    self.num_classes, self.image_shape = info.num_classes, subsets.input_shape(tgt, info)
    self.target_train = subsets.task_source(tgt, tgt.train_split)
    self.target_test = subsets.task_source(tgt, tgt.eval_split)
    self.source_train = subsets.task_source(src, src.train_split)
    self._cache = {}

  def _cached(self, key, make):
    if key not in self._cache:
      self._cache[key] = make()
    return self._cache[key]

  def _init(self, model):
    return self._cached(('init', model), lambda: jax.jit(model.init))

  def evaluator(self, model):
    """state -> {'accuracy', 'loss'} on the target test split."""
    eval_step = self._cached(('eval', model),
                             lambda: make_eval_step(accuracy_sums(model), self.mesh))
    return lambda state: classifier_metrics(eval_step, state, self.target_test,
                                            self.config.eval_batch_size, self.mesh)

  def train_source(self, seed):
    """Trains the seed's source model unless it is given or done; returns its summary."""
    directory = source_dir(self.config, self.workdir, seed)
    done = os.path.join(directory, 'summary.json')
    if not self.config.source and not os.path.exists(done):
      print(f'training the source model of seed {seed} in {directory}')
      train_stage.train(source_task(self.config, seed), directory)
    return common.read_json(done) if os.path.exists(done) else {}

  def source_model(self, seed):
    """(model, variables, source step, source dir) of the seed's source run, checked to fit."""
    directory = source_dir(self.config, self.workdir, seed)
    try:
      src_vars, model_cfg, step = load_pretrained(directory, self.config.source_step)
      model = build_model({**model_cfg, 'num_classes': self.num_classes, 'projector': None,
                           'domain_head': None})
      fresh = self._init(model)(jax.random.key(seed), jnp.zeros((1,) + self.image_shape))
      variables, _ = transplant(src_vars, fresh)  # strict: every leaf must fit
    except (PretrainedError, TransplantError, ValueError) as e:
      raise common.ConfigError(f'source run {directory}: {e}') from None
    return model, variables, step, directory

  def cell(self, method, seed):
    """Runs (or reads back) one cell; returns its summary ({'target_test_accuracy', ...})."""
    cell_dir = _cell_dir(self.workdir, method, seed)
    done = os.path.join(cell_dir, 'summary.json')
    if os.path.exists(done):
      summary = common.read_json(done)
      if 'target_test_accuracy' in summary:
        return summary
    os.makedirs(cell_dir, exist_ok=True)
    t0 = time.time()
    summary = getattr(self, method)(cell_dir, seed)
    summary['wall_time_s'] = time.time() - t0
    if jax.process_index() == 0:
      common.write_json(done, summary)
    return summary

  def _fit(self, cell_dir, state, loss_fn, tx, step, batches, num_steps, evaluate, eval_every):
    state, metrics, stopped = session.fit(
        cell_dir, state, loss_fn, tx, batches, self.mesh, num_steps=num_steps, evaluate=evaluate,
        log_every=max(min(eval_every, num_steps // 10), 1), eval_every=eval_every,
        checkpoint_every=eval_every, keep_checkpoints=1, train_step=step,
        should_stop=common.preempted,
        progress=self.config.progress,
        desc=os.path.relpath(cell_dir, self.workdir))
    if stopped:
      common.fail(f'preempted at step {int(state.step)}; checkpoint saved, re-run to resume',
                  common.EXIT_PREEMPTED)
    return state, metrics

  # Methods: each returns the cell's summary dict.

  def source_only(self, cell_dir, seed):
    del cell_dir
    model, variables, step, directory = self.source_model(seed)
    metrics = self.evaluator(model)(TrainState.create(variables, _NO_UPDATES, seed))
    summary = {'target_test_accuracy': metrics['accuracy'], 'target_test_loss': metrics['loss'],
               'source_step': int(step)}
    source_summary = os.path.join(directory, 'summary.json')
    if os.path.exists(source_summary):
      summary['source_test_accuracy'] = common.read_json(source_summary).get('test_accuracy')
    return summary

  def target_oracle(self, cell_dir, seed):
    summary, _ = train_stage.train(oracle_task(self.config, seed), cell_dir)
    return {**summary, 'target_test_accuracy': summary['test_accuracy']}

  def dann(self, cell_dir, seed):
    cfg = self.config.dann
    model = build_model({**self.config.source_task.model.to_dict(),
                         'num_classes': self.num_classes, 'domain_head': tuple(cfg.domain_head)})
    tx, loss_fn, step = self._cached(('dann', model), lambda: self._dann_step(model))
    variables = self._init(model)(jax.random.key(seed), jnp.zeros((1,) + self.image_shape))
    state = TrainState.create(variables, tx, seed)
    batches = loader.paired_iterator(self.source_train, self.target_train, cfg.batch_size, seed=seed,
                                     process_index=jax.process_index(),
                                     process_count=jax.process_count())
    state, metrics = self._fit(cell_dir, state, loss_fn, tx, step, batches, cfg.steps,
                               self.evaluator(model), max(cfg.steps // 5, 1))
    return {'target_test_accuracy': metrics['accuracy'], 'target_test_loss': metrics['loss'],
            'steps': int(state.step)}

  def _dann_step(self, model):
    cfg = self.config.dann
    tx = optim.base_optimizer(cfg.optimizer, cfg.steps)
    loss_fn = dann_lib.dann(model, cfg.steps, cfg.domain_weight, cfg.gamma, cfg.batch_norm,
                            train_stage.make_augment(cfg.augment))
    return tx, loss_fn, make_train_step(loss_fn, tx, self.mesh)

  def shot(self, cell_dir, seed):
    cfg = self.config.shot
    model, variables, src_step, _ = self.source_model(seed)
    steps_per_epoch = cfg.steps_per_epoch or max(len(self.target_train) // cfg.batch_size, 1)
    num_steps = cfg.epochs * steps_per_epoch
    tx, loss_fn, step = self._cached(('shot', model, num_steps),
                                     lambda: self._shot_step(model, variables, num_steps))
    state = TrainState.create(variables, tx, seed)
    labels, accuracy = self.pseudo_labels(model, state.variables)
    print(f'{os.path.relpath(cell_dir, self.workdir)}: initial pseudo-label accuracy '
          f'{accuracy:.4f} (diagnostic: target train labels are used for nothing else)')
    inner = loader.train_iterator(_ImagesWithIndex(self.target_train), cfg.batch_size, seed=seed,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count(), keys=('image', 'index'))
    batches = PseudoLabelledBatches(inner, labels)
    evaluate = self.evaluator(model)

    def epoch_end(state):
      """Test accuracy, then SHOT's pseudo-labels for the next epoch from the current model."""
      metrics = evaluate(state)
      if int(jax.device_get(state.step)) < num_steps:
        batches.labels, accuracy = self.pseudo_labels(model, state.variables)
        metrics['target_train'] = {'pseudo_label_accuracy': accuracy}  # its own split
      return metrics

    state, metrics = self._fit(cell_dir, state, loss_fn, tx, step, batches, num_steps, epoch_end,
                               steps_per_epoch)
    return {'target_test_accuracy': metrics['accuracy'], 'target_test_loss': metrics['loss'],
            'initial_pseudo_label_accuracy': accuracy, 'steps': int(state.step),
            'source_step': int(src_step)}

  def _shot_step(self, model, variables, num_steps):
    cfg = self.config.shot
    tx = freeze.masked_optimizer(lambda: optim.base_optimizer(cfg.optimizer, num_steps),
                                 variables['params'], SHOT_GROUPS)
    loss_fn = shot_lib.shot(model, cfg.beta, cfg.im_weight,
                            augment=train_stage.make_augment(cfg.augment))
    return tx, loss_fn, make_train_step(loss_fn, tx, self.mesh)

  def pseudo_labels(self, model, variables):
    """SHOT's clustered labels of every target training image, and their accuracy.

    The accuracy (against the target train labels) is only logged, never used.
    """
    head = self._cached(('head', model), lambda: jax.jit(
        lambda params, f: model.apply({'params': params}, f, method=Model.classify)))
    features, true_labels = extract_features(model, variables, self.target_train,
                                             self.config.eval_batch_size, self.mesh)
    logits = head(variables['params'], features)
    labels, _ = shot_lib.cluster_pseudo_labels(features, logits, self.config.shot.cluster_rounds)
    return labels, float(np.mean(labels == true_labels))


class _NoUpdates:
  """A stand-in optimizer for evaluating a fixed model through TrainState."""

  @staticmethod
  def init(params):
    del params
    return ()


_NO_UPDATES = _NoUpdates()


# ----------------------------------------------------------------------------- main


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'adapt')
  info = validate(config, workdir)
  sweep = Adaptation(config, workdir, info, mesh_lib.make_mesh())
  needs_source = any(m in NEEDS_SOURCE for m in config.methods)
  if config.source and needs_source:  # given sources must load and fit before anything is written
    for seed in config.seeds:
      sweep.source_model(seed)
  common.claim_workdir(workdir, config, SWEEP_KEYS)
  source_times = []
  if needs_source:
    for seed in config.seeds:
      source_times.append(sweep.train_source(seed).get('wall_time_s', float('nan')))
      if not config.source:
        sweep.source_model(seed)  # a source that does not fit fails before the sweep

  results, times = {}, {}
  for method in config.methods:
    cells = [sweep.cell(method, seed) for seed in config.seeds]
    results[method] = [c['target_test_accuracy'] for c in cells]
    times[method] = [c.get('wall_time_s', float('nan')) for c in cells]
    accs = np.asarray(results[method])
    print(f'{method:>13}: target test accuracy {100 * accs.mean():.1f} +- '
          f'{100 * accs.std():.1f} ({len(accs)} seeds, {np.sum(times[method]):.0f} s)')
  summary = summarize(results)
  if jax.process_index() == 0:
    common.write_json(os.path.join(workdir, 'summary.json'), summary)
    common.write_text(os.path.join(workdir, 'report.md'),
                      _report(config, results, times, source_times, summary))
  print(f'report: {os.path.join(workdir, "report.md")}')


def summarize(results):
  """{method: [accuracy per seed]} -> flat summary; gap closed when both bounds ran.

  gap_closed = (acc - source_only) / (target_oracle - source_only), on seed means.
  """
  summary = {}
  for method, accs in results.items():
    summary[f'{method}/target_test_accuracy'] = float(np.mean(accs))
    summary[f'{method}/target_test_accuracy_std'] = float(np.std(accs))
  if len(results) == 1:
    summary['target_test_accuracy'] = float(np.mean(next(iter(results.values()))))
  if 'source_only' in results and 'target_oracle' in results:
    low, high = np.mean(results['source_only']), np.mean(results['target_oracle'])
    for method in ('dann', 'shot'):
      if method in results and high > low:
        summary[f'{method}/gap_closed'] = float((np.mean(results[method]) - low) / (high - low))
  return summary


def _report(config, results, times, source_times, summary):
  seeds = tuple(config.seeds)
  lines = ['| method | ' + ' | '.join(f'seed {s}' for s in seeds) +
           ' | mean ± std | wall time per seed (s) |',
           '|---|' + '---|' * (len(seeds) + 2)]
  for method, accs in results.items():
    cells = ' | '.join(f'{100 * a:.1f}' for a in accs)
    lines.append(f'| {method} | {cells} | {100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f} | '
                 f'{np.mean(times[method]):.0f} |')
  gaps = [f'{m}: {100 * summary[f"{m}/gap_closed"]:.0f}%' for m in ('dann', 'shot')
          if f'{m}/gap_closed' in summary]
  source = config.source or '<workdir>/source/seed<s>'
  return (f'# Domain adaptation: {config.source_task.dataset.name} -> {config.target.name}\n\n'
          f'Target test accuracy (%) on `{config.target.name}:{config.target.eval_split}`; '
          f'the target `{config.target.train_split}` split is used without labels. '
          f'Source runs: `{source}`' +
          (f' (training: {np.mean(source_times):.0f} s per seed, not in the wall times below). '
           if source_times and not config.source else '. ') +
          f'DANN: {config.dann.steps} steps, BatchNorm {config.dann.batch_norm}; SHOT: '
          f'{config.shot.epochs} epochs.\n\n' + '\n'.join(lines) + '\n' +
          (f'\nGap closed between source_only and target_oracle: {", ".join(gaps)}.\n'
           if gaps else ''))


if __name__ == '__main__':
  common.launch(main, 'configs/digits_to_digits_m.py')
