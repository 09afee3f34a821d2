"""Transfer strategies: which weights a cell starts from, what trains, in which phases.

  scratch       structure transfer: the source architecture, fresh weights, all trains
  linear_probe  source backbone frozen (BatchNorm statistics too), fresh head trains
  finetune      source backbone and fresh head train (backbone lr x `backbone_lr_mult`)
  lp_ft         linear_probe for `lp_steps`, then finetune from the probed state
                (Kumar et al. 2022, "Fine-tuning can distort pretrained features")
  gradual       finetune with gradual unfreezing (ULMFiT, Howard & Ruder 2018): the
                parameters each `unfreeze` stage names train from its step on, the head
                from the first (`unfreeze=((step, (regex, ...)), ...)`)

Each strategy is registered by name in `STRATEGIES`.

Every phase is one run of the supervised method (`tlu.methods.supervised`) through
`tlu.train.task`: `phase_config` makes its task config from the transfer config,
and `fit` trains a cell's phases in order, each from the state the one before left.
A transfer config holds `strategies`, `steps`, `lp_steps`, `backbone_lr_mult`,
`probe_lr_mult`, `unfreeze`, `label_smoothing`, `head_l2_scale`, `head_init` ('fresh' | 'imprint'),
`dont_load`, `adapters`, `optimizer`, `augment`, `batch_size`, `eval_batch_size`,
`dataset` and `progress` (configs/digits_transfer.py).
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tlu import checks, methods
from tlu.models import build_model
from tlu.registry import Registry
from tlu.train import task, workdir as workdir_lib
from tlu.transfer.imprint import imprint
from tlu.transfer.surgery import transplant

RANGES = {   # the transfer sweep's own keys
    'steps': checks.POSITIVE_INT, 'lp_steps': checks.POSITIVE_INT,
    'batch_size': checks.POSITIVE_INT, 'eval_batch_size': checks.POSITIVE_INT,
    'backbone_lr_mult': checks.NON_NEGATIVE, 'probe_lr_mult': checks.NON_NEGATIVE,
    'head_l2_scale': checks.NON_NEGATIVE, 'label_smoothing': checks.BELOW_ONE,
    'labels_per_class': checks.FEW_LABELS}

HEAD_INITS = ('fresh', 'imprint')


@dataclasses.dataclass(frozen=True)
class Phase:
  """One training run of a cell.

  subdir: where in the cell it trains ('': the cell itself, whose summary is the cell's);
  freeze: 'none' | 'probe' | 'finetune', the groups of `freeze_groups`;
  budget: the transfer config key of its number of steps ('steps' | 'lp_steps');
  unfreeze: the task unfreezes gradually, by the transfer config's `unfreeze` stages.
  """
  subdir: str
  freeze: str
  budget: str
  unfreeze: bool = False


@dataclasses.dataclass(frozen=True)
class Strategy:
  loads_source: bool   # the first phase starts from the source's shared layers
  phases: tuple


STRATEGIES = Registry('strategy')
STRATEGIES.register('scratch')(Strategy(False, (Phase('', 'none', 'steps'),)))
STRATEGIES.register('linear_probe')(Strategy(True, (Phase('', 'probe', 'steps'),)))
STRATEGIES.register('finetune')(Strategy(True, (Phase('', 'finetune', 'steps'),)))
STRATEGIES.register('lp_ft')(
    Strategy(True, (Phase('lp', 'probe', 'lp_steps'), Phase('', 'finetune', 'steps'))))
STRATEGIES.register('gradual')(Strategy(True, (Phase('', 'finetune', 'steps', unfreeze=True),)))


def get(name):
  return STRATEGIES.get(name)


def loads_source(name):
  return get(name).loads_source


def freeze_groups(kind, config):
  """The `(regex, lr multiplier | None)` freezing spec of a phase (`tlu.train.task`'s `freeze`).

  probe_lr_mult scales the head's lr when the backbone is frozen: a linear probe on
  fixed features wants a much larger step than fine-tuning does.
  """
  if kind == 'probe':
    return (('backbone/.*', None), ('head/.*', float(config.probe_lr_mult)))
  if kind == 'finetune' and config.backbone_lr_mult != 1.0:
    return (('backbone/.*', float(config.backbone_lr_mult)),)
  return ()


def phase_config(config, strategy, phase, *, model, seed):
  """The task config of phase `phase` (an index) of `strategy` for one cell: the method of
  `config.method` (supervised cross-entropy, L2-SP toward the source weights, BSS or DELTA).

  model: the source run's model config (a mapping); seed: the cell's seed (model init,
  train-state rng and batch order). Logs 5 times, checkpoints once at the end.
  """
  p = get(strategy).phases[phase]
  steps = int(config[p.budget])
  c = ml_collections.ConfigDict()
  c.seed = int(seed)
  method = dict(config.get('method', {'name': 'supervised'}))   # supervised, l2sp, bss, delta
  c.method = ml_collections.ConfigDict(dict(
      method, label_smoothing=config.label_smoothing, head_l2_scale=config.head_l2_scale))
  c.model = ml_collections.ConfigDict(dict(model or {}))
  c.freeze = freeze_groups(p.freeze, config)
  if p.unfreeze:
    c.unfreeze = tuple(config.unfreeze)
  c.optimizer = config.optimizer.copy_and_resolve_references()
  c.steps = steps
  c.batch_size = config.batch_size
  c.eval_batch_size = config.eval_batch_size
  c.augment = config.augment
  c.evals = ml_collections.ConfigDict({'test': {'type': 'classification'}})
  c.log_every = max(steps // 5, 1)
  c.eval_every = 0
  c.checkpoint_every = steps
  c.keep_checkpoints = 1
  c.progress = config.progress
  return c


def check(config, class_counts):
  """Checks of a transfer config that need no compute; ValueError naming key and value.

  class_counts: {class label: training examples} of the target task.
  """
  checks.check_values(config, RANGES)
  for name in config.strategies:
    get(name)
  if config.head_init not in HEAD_INITS:
    raise ValueError(f'head_init {config.head_init!r}: use one of {HEAD_INITS}')
  if config.head_init == 'imprint' and not config.head_l2_scale > 0:
    raise ValueError('head_init=imprint needs head_l2_scale > 0 (a cosine head)')
  if config.steps < 1 or ('lp_ft' in config.strategies and config.lp_steps < 1):
    raise ValueError('steps (and lp_steps for lp_ft) must be >= 1')
  if 'gradual' in config.strategies and not config.get('unfreeze'):
    raise ValueError('strategy gradual needs unfreeze=((step, (regex, ...)), ...)')
  need = max([k for k in config.labels_per_class if k > 0], default=0)
  if config.head_init == 'imprint':
    need = max(need, 1)   # one example per class to imprint from
  short = {c: n for c, n in class_counts.items() if n < need}
  if short:
    ds = config.dataset
    imprinted = ' and an imprinted head' if config.head_init == 'imprint' else ''
    raise ValueError(
        f'{ds.name}:{ds.train_split} has too few examples of classes {short} (class: count): '
        f'labels_per_class={tuple(config.labels_per_class)}{imprinted} need {need} per class')


def target_shapes(cfg, splits):
  """Abstract variables ({'params', 'batch_stats'} of jax.ShapeDtypeStruct) of a task's model."""
  model = build_model(cfg.model, methods.get(cfg.method.name).heads(cfg.method, splits.num_classes))
  return jax.eval_shape(model.init, jax.random.key(0),
                        jnp.zeros((1,) + tuple(splits.image_shape), jnp.float32))


def load_source(config, source, fresh):
  """(variables, TransplantReport): `fresh` with the source's shared layers transplanted in.

  The leaves `config.dont_load` names (the head) keep their fresh values; `config.adapters`
  as in `tlu.transfer.surgery.transplant`. `fresh` may be abstract (a check without compute).
  """
  return transplant(source, fresh, dont_load=tuple(config.dont_load),
                    adapters=tuple(config.adapters))


def _source_init(trainer, config, cfg, splits, source):
  """init(fresh variables) -> variables of a source-loading first phase (imprinted head)."""

  def init(fresh):
    variables, _ = load_source(config, source, fresh)
    if config.head_init == 'imprint':
      model = trainer.build(cfg, splits)[1]
      variables = imprint(model, variables, splits.train, config.eval_batch_size, trainer.mesh)
    return variables

  return init


def fit(trainer, config, strategy, cell_dir, splits, *, model, source, seed,
        should_stop=lambda: False, desc='cell'):
  """Trains (or resumes) every phase of `strategy` for one cell; returns the last phase's
  `(summary, state)` (`tlu.train.task.fit_task`).

  splits: the cell's target splits (train: its labelled examples). source: the source
  run's variables (unused by scratch). A phase after the first starts from the final
  variables of the one before (LP-FT fine-tunes the probed model), with a fresh optimizer.
  Raises `tlu.train.task.Preempted` as soon as a phase is stopped.
  """
  summary, state = None, None
  for i, phase in enumerate(get(strategy).phases):
    cfg = phase_config(config, strategy, i, model=model, seed=seed)
    if state is not None:
      init = lambda _, v=jax.device_get(state.variables): v
    elif loads_source(strategy):
      init = _source_init(trainer, config, cfg, splits, source)
    else:
      init = None
    run_dir = workdir_lib.path(cell_dir, phase.subdir) if phase.subdir else cell_dir
    summary, state = task.fit_task(trainer, cfg, str(run_dir), splits, init=init,
                                   should_stop=should_stop,
                                   desc=f'{desc}/{phase.subdir}' if phase.subdir else desc)
  return summary, state


def class_counts(view):
  """{original class label: examples} of a `tlu.data.subsets.TaskView`."""
  counts = np.bincount(view.labels, minlength=len(view.classes))
  return {int(c): int(n) for c, n in zip(view.classes, counts)}
