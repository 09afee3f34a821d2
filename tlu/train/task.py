"""One training run of any method, from its config: the house every stage trains through.

A task config holds `method` (its `name` and hyperparameters), `model`,
`optimizer`, `freeze` (big_vision's `(regex, None | lr multiplier)` pairs: None is
frozen, in the optimizer *and* in BatchNorm), `augment`, `steps` (or `epochs`),
`batch_size`, `seed`, `evals` (named evaluation instances, `tlu.evaluators`), `online_probe`
and the logging/checkpoint intervals.

`online_probe` (bool, default False) trains solo-learn's online linear probe during
the run: a linear classifier `online_probe` on stop_gradient of the backbone features,
its cross-entropy added to the method's loss (`tlu.methods.base.Method.objective`), so
the backbone trains as without it; an evaluation instance of type `classification` with
`head='online_probe'` reports its accuracy like any other. It rides on the one
optimizer: give it its own learning rate with a `freeze` entry `('online_probe/.*', m)`
(lr x m). Global-norm clipping (`optimizer.grad_clip_norm`) sees its gradient with the
others' unless such an entry puts it in its own group. `Trainer`
builds the model with the method's heads, the masked optimizer, the train state
with the method's state, and runs `tlu.train.session.fit`; compiled steps are
shared by the cells of a sweep that differ only in seed.
"""

import dataclasses
import functools
import json
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from tlu import checks, evaluators as evaluators_lib, methods
from tlu.data import augment as augment_lib
from tlu.methods import layouts, phases as phases_lib
from tlu.methods.base import PROBE_INPUTS
from tlu.methods.facts import RunFacts
from tlu.models import MODELS, build_model
from tlu.models.model import INPUT_RANGES
from tlu.train import loop, optim, session
from tlu.train.state import TrainState
from tlu.train.step import make_train_step
from tlu.transfer import freeze as freeze_lib


@dataclasses.dataclass
class Splits:
  """The data of one run: `train` (what the method reads), `test` (labelled, for
  evaluators), `target` (unlabelled target images of paired methods), and the task's
  `num_classes` and model input `image_shape` (H, W, C)."""
  train: Any
  num_classes: int
  image_shape: tuple
  test: Any = None
  target: Any = None
  eval_train: Any = None   # labelled train split for representation evaluators (default train)
  extra: dict = dataclasses.field(default_factory=dict)   # more named splits evaluations read
  labelled: bool = True    # False: the dataset has no labels (tlu.data.labels.check_labels)
  unlabelled: Any = None   # semi-supervised methods' unlabelled images (None: train's)


def num_steps(cfg, num_examples):
  """(steps, steps per epoch): cfg.steps, or cfg.epochs passes of cfg.steps_per_epoch
  (0: one pass over `num_examples` at cfg.batch_size)."""
  epoch = cfg.get('steps_per_epoch', 0) or max(num_examples // cfg.batch_size, 1)
  return (cfg.steps if cfg.get('steps', 0) else cfg.epochs * epoch), epoch


def augment_fn(spec):
  return augment_lib.make_augment(spec) if spec else None


def run_facts(cfg, splits):
  """The `RunFacts` of a task config on its splits: what the method is told of the run."""
  steps, epoch = num_steps(cfg, len(splits.train))
  return RunFacts(num_steps=steps, batch_size=cfg.batch_size, epoch_steps=epoch,
                  num_examples=len(splits.train),
                  num_unlabelled=len(layouts.unlabelled_split(splits)),
                  num_classes=splits.num_classes, image_shape=tuple(splits.image_shape),
                  frozen=tuple(freeze_lib.frozen_patterns(_groups(cfg))),
                  online_probe=bool(cfg.get('online_probe', False)))


def _groups(cfg):
  return tuple(tuple(g) for g in cfg.get('freeze', ()))


def build_method(cfg, splits, model=None):
  """(method instance, model, tx) of a task config: heads from the method, freezing from cfg.

  tx: the masked optimizer, or for a method with update phases one per phase
  (`tlu.methods.phases.PhaseOptimizers`).
  """
  method_cls = methods.get(cfg.method.name)
  facts = run_facts(cfg, splits)
  model = model or build_model(cfg.model, method_cls.model_heads(cfg.method, splits.num_classes,
                                                                  facts.online_probe))
  groups = _groups(cfg)
  params = _abstract_params(model, splits)
  base = lambda: optim.optimizer(cfg.optimizer, facts.num_steps, cfg.batch_size)
  unfreeze = tuple(cfg.get('unfreeze', ()))   # gradual unfreezing (ULMFiT), tlu.transfer.freeze
  make_tx = lambda p: (freeze_lib.masked_optimizer(base, p, groups, unfreeze=unfreeze or None)
                       if groups or unfreeze else base())
  phases = method_cls.update_phases(cfg.method)
  tx = phases_lib.PhaseOptimizers(phases, make_tx, params) if phases else make_tx(params)
  method = method_cls(cfg.method, model, facts, augment=augment_fn(cfg.get('augment')))
  return method, model, tx


def _abstract_params(model, splits):
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1,) + tuple(splits.image_shape), jnp.float32))
  return shapes['params']


def _compile_key(cfg, splits):
  """What decides the compiled step: the config but the seed, the evaluations and logging,
  and the whole `RunFacts` (train size included), so no cell runs another's step."""
  d = json.loads(cfg.to_json_best_effort(sort_keys=True))
  for k in ('seed', 'evals', 'log_every', 'eval_every', 'checkpoint_every',
            'keep_checkpoints', 'progress', 'dataset'):
    d.pop(k, None)
  return json.dumps(d, sort_keys=True), run_facts(cfg, splits)


@functools.lru_cache(maxsize=64)
def _jit_init(model):
  return jax.jit(model.init)


class Trainer:
  """Runs task configs on one mesh; cells that differ only in seed share compiled programs."""

  def __init__(self, mesh):
    self.mesh = mesh
    self._built = {}

  def build(self, cfg, splits):
    """(method, model, tx, jit init, compiled train step), cached per compile key."""
    key = _compile_key(cfg, splits)
    if key not in self._built:
      method, model, tx = build_method(cfg, splits)
      self._built[key] = (method, model, tx, _jit_init(model),
                          make_train_step(method, tx, self.mesh))
    return self._built[key]

  def init_state(self, cfg, splits, init: Optional[Callable] = None):
    """The fresh train state of a task; `init(variables) -> variables` loads a source into it."""
    method, model, tx, init_fn, _ = self.build(cfg, splits)
    variables = init_fn(jax.random.key(cfg.seed),
                        jnp.zeros((1,) + tuple(splits.image_shape), jnp.float32))
    if init is not None:
      variables = init(variables)
    extra = method.init_extra(variables, jax.random.fold_in(jax.random.key(cfg.seed), 1))
    return TrainState.create(variables, tx, cfg.seed, extra)

  def context(self, cfg, splits):
    """The evaluators' context for this task's model: splits 'train' (labelled), 'test' and
    `splits.extra`."""
    _, model, _, _, _ = self.build(cfg, splits)
    named = {'train': splits.eval_train or splits.train, 'test': splits.test, **splits.extra}
    return evaluators_lib.Context(model=model, mesh=self.mesh, splits=named,
                                  num_classes=splits.num_classes,
                                  batch_size=cfg.eval_batch_size)

  def evaluations(self, cfg, splits):
    """The task's `cfg.evals` instances on its context (`tlu.evaluators.Evaluations`)."""
    return evaluators_lib.Evaluations(cfg.get('evals', {}), self.context(cfg, splits),
                                      cfg.get('eval_every', 0))

  def run(self, cfg, workdir, splits, *, init=None, should_stop=lambda: False, desc='train',
          on_log=None, state=None):
    """Trains (or resumes) the task in `workdir`; returns (state, final eval metrics, stopped)."""
    method, _, _, _, train_step = self.build(cfg, splits)
    state = state if state is not None else self.init_state(cfg, splits, init)
    batches = method.batches(splits, seed=cfg.seed, process_index=jax.process_index(),
                             process_count=jax.process_count())
    host = None
    if method.uses_host():
      ctx = self.context(cfg, splits)
      host = lambda s: method.host_update(s, ctx)
    return session.fit(workdir, state, train_step, batches, self.mesh, loop.Options(
        num_steps=method.facts.num_steps, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=cfg.get('keep_checkpoints', 3), progress=cfg.get('progress', True),
        desc=desc, evaluate=self.evaluations(cfg, splits), host_update=host,
        host_every=method.host_every, should_stop=should_stop, on_log=on_log))


def task_splits(ds, labels=True):
  """Splits of a dataset config (name, data_dir, train/eval split, classes, image_size, channels).

  labels=False: the training split is read as images only (self-supervised methods
  never see labels); evaluators still get the labelled train split.
  """
  from tlu.data import sources, subsets  # pylint: disable=import-outside-toplevel
  checks.check_values(ds, subsets.RANGES, 'dataset.')
  if not sources.is_labelled(ds.name, ds.get('data_dir')):   # images only, no test split read
    info = sources.dataset_info(ds.name, [ds.train_split], ds.get('data_dir'))
    return Splits(train=subsets.task_source(ds, ds.train_split, labelled=False), num_classes=0,
                  image_shape=subsets.input_shape(ds, info), labelled=False)
  info = sources.dataset_info(ds.name, [ds.train_split, ds.eval_split], ds.get('data_dir'))
  classes = tuple(ds.get('classes', ())) or tuple(range(info.num_classes))
  unknown = sorted(set(classes) - set(range(info.num_classes)))
  if unknown:
    raise ValueError(f'dataset.classes {unknown} are not labels of {ds.name}')
  train = subsets.task_source(ds, ds.train_split)
  del labels  # the method's `inputs` decides which keys are read
  return Splits(train=train, test=subsets.task_source(ds, ds.eval_split),
                num_classes=len(classes), image_shape=subsets.input_shape(ds, info))


class Preempted(RuntimeError):
  """Training stopped on request (SIGTERM) after saving a checkpoint; re-run to resume."""


def config_json(cfg):
  return json.loads(cfg.to_json_best_effort(sort_keys=True))


def fit_task(trainer, cfg, run_dir, splits, *, init=None, summary_prefix='test_',
             should_stop=lambda: False, desc='train', claim=True):
  """Claims `run_dir` (config.json), trains or resumes the task, writes summary.json.

  Returns (summary, state). summary: the final evaluation with `summary_prefix` on its
  names, `steps` and `wall_time_s` (this invocation). Raises Preempted when stopped.
  """
  import time  # pylint: disable=import-outside-toplevel
  from tlu.train import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  if claim:
    workdir_lib.claim(run_dir, config_json(cfg))
  last_train = {}
  state, metrics, stopped = trainer.run(cfg, run_dir, splits, init=init,
                                        should_stop=should_stop, desc=desc,
                                        on_log=lambda step, m: last_train.update(m))
  if stopped:
    raise Preempted(f'preempted at step {int(jax.device_get(state.step))}; checkpoint saved, '
                    're-run to resume')
  summary = {f'{summary_prefix}{k}': v for k, v in metrics.items() if not isinstance(v, dict)}
  summary.update({f'train_{k}': v for k, v in last_train.items() if k != 'steps_per_sec'})
  summary.update(steps=int(jax.device_get(state.step)), wall_time_s=time.time() - t0)
  if jax.process_index() == 0:
    workdir_lib.write_json(workdir_lib.path(run_dir, 'summary.json'), summary)
  return summary, state


def check_values(cfg):
  """The ranges of a task config's values, each block by its owner: the house's keys
  (`tlu.checks.TASK`), the method's, optimizer's, backbone's, dataset's and
  augmentation's (`ranges` / `RANGES` beside their code). RangeError naming the key."""
  from tlu.data import subsets  # pylint: disable=import-outside-toplevel
  checks.check_task_values(cfg)
  method_cls = methods.get(cfg.method.name)
  checks.check_values(cfg.method, method_cls.ranges, 'method.')
  checks.check_values(cfg.optimizer, optim.RANGES, 'optimizer.')
  model = cfg.get('model') or {}
  if 'name' in model:   # a transfer phase's model comes with its source, checked then
    checks.check_values(model, {**MODELS.ranges(model['name']), **INPUT_RANGES}, 'model.')
  checks.check_values(cfg.get('dataset'), subsets.RANGES, 'dataset.')
  with checks.under('augment.'):
    augment_fn(cfg.get('augment'))
  return method_cls


def check_task(cfg, splits=None):
  """Every check of a task config that needs no compute; ValueError naming key and value.

  splits given: the model is also traced abstractly (shapes only), so a model that
  does not fit the data fails here.
  """
  method_cls = check_values(cfg)
  n = jax.device_count()
  for key in ('batch_size', 'eval_batch_size'):
    if cfg.get(key) is not None and cfg[key] % n:
      raise ValueError(f'{key}={cfg[key]} is not divisible by the {n} devices; '
                       f'use a multiple of {n}')
  method_cls.check(cfg.method)
  method_cls.check_batch(cfg.method, cfg.batch_size)
  if cfg.get('online_probe', False) and method_cls.update_phases(cfg.method):
    raise ValueError(f'online_probe=True: method {method_cls.name} has update phases; the '
                     'probe rides on single-update methods only')
  if cfg.get('online_probe', False) and method_cls.inputs not in PROBE_INPUTS:
    raise ValueError(f'online_probe=True: method {method_cls.name} reads {method_cls.inputs!r} '
                     f'batches; the probe needs labelled images ({", ".join(PROBE_INPUTS)} '
                     'methods)')
  split_names = None if splits is None else ('train', 'test', *splits.extra)
  evaluators_lib.check(cfg.get('evals', {}), split_names)
  optim.base_optimizer(cfg.optimizer, max(cfg.get('steps', 0), 1), cfg.batch_size)
  for group in cfg.get('freeze', ()):
    if len(group) != 2 or not (group[1] is None or group[1] >= 0):
      raise ValueError(f'freeze entry {tuple(group)!r}: use (regex, None) to freeze or '
                       '(regex, lr multiplier >= 0)')
  if splits is not None and not splits.labelled:
    from tlu.data import labels  # pylint: disable=import-outside-toplevel
    labels.check_labels(cfg, method_cls.inputs, cfg.dataset.name)
  if splits is not None:
    model = build_model(cfg.model, method_cls.model_heads(cfg.method, splits.num_classes,
                                                          cfg.get('online_probe', False)))
    evaluators_lib.check(cfg.get('evals', {}), heads=model.head_names)
    params = _abstract_params(model, splits)
    optim.check_unscheduled(cfg.optimizer, params)
    freeze_lib.check_unfreeze(cfg.get('unfreeze', ()), params,
                              num_steps(cfg, len(splits.train))[0])
