"""What a method is: the objective of one training run, and everything it owns.

A method file defines a subclass of `Method` and registers it under its name
(`@METHODS.register('simclr')`, `tlu.methods.METHODS`). It is built as
`cls(config.method, model, facts, augment)`, `facts` the run's `RunFacts`
(`tlu.methods.facts`: steps, batch size, steps per epoch, examples, classes, ...), and says:
  - `heads(config, num_classes)`: the heads it needs on top of the backbone;
  - `init_extra(variables, rng)`: method state beside the parameters (EMA target,
    queue, centre, pseudo-labels), kept in `TrainState.extra` and checkpointed;
  - `loss_fn(params, model_state, batch, rng) -> LossOutput` (`tlu.methods.output`): pure,
    jit-compiled; its `batch_stats` are the updated BatchNorm statistics, the same tree as
    the model's (the train step raises otherwise);
  - `phases`: optional, several update phases per step over parts of the parameters,
    each with its own loss and optimizer state (`tlu.methods.phases`; MCD's three), or
    `update_phases(config)` when they depend on the config (MCD's num_k generator updates);
  - `after_update(state) -> state`: optional, inside the jit step after the optimizer;
  - `host_update(state, host) -> (state, {split: metrics})`: optional host hook run
    before the first step and every `host_every` steps (SHOT's pseudo-labels); what it
    changes goes into `state.extra`, so resume is exact;
  - `inputs`: the batch layout it reads, a name in `tlu.methods.layouts.LAYOUTS`
    (labelled, images, paired source + target, indexed, labelled + unlabelled at a ratio);
  - `ranges`: {key: tlu.checks.Range} of its block's values (numbers, integers, widths,
    flags); `check(config)`: only what a range cannot say, relations between keys, names,
    regexes (ValueError naming key and value); `check_batch(config, batch_size)`: those
    that depend on the global batch size.
The loop, the step, checkpoints, freezing and evaluation belong to the house.

The online linear probe (solo-learn's protocol) is the house's too: with the task's
`online_probe` on, `model_heads` adds a linear classifier `online_probe` on the backbone
features and `objective` (what the train step differentiates) adds its cross-entropy on
`jax.lax.stop_gradient` of the features the method returned in `outputs['features']`, so
the backbone's and the method's heads' gradients are the method's alone. 'images'
methods then read labels too; only the probe uses them.

Regularisers compose by subclassing: a method variant that adds a penalty (BSP on
DANN, L2-SP on fine-tuning) is a method file whose `loss_fn` calls the parent's
and adds its term, and whose `init_extra` adds the state the penalty needs (the
source weights for L2-SP) beside the parent's; the parent's `outputs` (features,
logits) let the penalty reuse its forward pass. Building blocks several methods share
(the BSP penalty, the paired forward, the momentum target) are modules of
`tlu/methods/` that register nothing.
"""

import jax
import jax.numpy as jnp
import optax

from tlu.data import augment as augment_lib
from tlu.methods import layouts
from tlu.methods.facts import RunFacts
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib

PROBE = 'online_probe'   # the online linear probe's head (and parameter subtree) name
PROBE_INPUTS = ('labelled', 'images')   # batches that can carry labels for the probe


class Method:
  """Base class; subclasses override what they need (see the module docstring).

  Attributes set at construction:
    config: the method's config block (`config.method`: its `name` and hyperparameters).
    model: the `tlu.models.Model` with the heads of `heads()`.
    facts: the run's `RunFacts` (steps, batch size, steps per epoch, examples, classes,
      image shape, frozen patterns, online probe), part of the compile key.
    mode: the `Mode` that training forward passes use (frozen BatchNorm layers).
    augment: on-device `augment(key, images) -> images` or None.
  Class attributes: `inputs` (a layout of `tlu.methods.layouts.LAYOUTS`), `host_every`
  (steps between `host_update` calls; 0: only before the first step, if at all),
  `from_source` (starts from a trained source model), `phases` (`tlu.methods.phases`).
  """
  name = ''
  inputs = 'labelled'   # a name in tlu.methods.layouts.LAYOUTS (see `batches`)
  from_source = False   # starts from a trained source model (SHOT, AaD; ADDA with the source)
  host_every = 0
  unlabelled_ratio = 1   # 'labelled_unlabelled': unlabelled images per labelled one (mu)
  phases = ()   # () : one update of every parameter by `objective`; else `Phase`s in order
  ranges = {}   # {key: tlu.checks.Range} of the method block's keys (checked by the house)

  def __init__(self, config, model, facts: RunFacts, augment=None):
    self.config, self.model, self.facts, self.augment = config, model, facts, augment
    self.mode = facts.mode
    self.phases = type(self).update_phases(config)   # this config's phases (the step's)

  # ------------------------------------------------------------------ what a method declares

  @classmethod
  def example_config(cls):
    """Small valid hyperparameters ({key: value}, without `name`): tests and examples."""
    return {}

  @classmethod
  def check(cls, config):
    """Raises ValueError for what `ranges` cannot say (the house checks those first)."""
    del config

  @classmethod
  def check_batch(cls, config, batch_size):
    """Raises ValueError for a config value that does not fit the global batch size
    (W-MSE's whitening sub-batches); run with `check`, before any compute."""
    del config, batch_size

  @classmethod
  def heads(cls, config, num_classes):
    """{name: tlu.models.heads.Head} the model needs for this method."""
    raise NotImplementedError

  @classmethod
  def model_heads(cls, config, num_classes, online_probe=False):
    """`heads()` and, with `online_probe`, the linear classifier `online_probe` (features
    (N, F) -> logits (N, num_classes)): the heads the house builds the model with."""
    heads = dict(cls.heads(config, num_classes))
    if online_probe:
      heads[PROBE] = heads_lib.classifier(num_classes)
    return heads

  @classmethod
  def update_phases(cls, config):
    """The `Phase`s of a run with this method config (after `check`): `phases` unless a
    method's phases depend on its config."""
    del config
    return cls.phases

  def init_extra(self, variables, rng):
    del variables, rng
    return {}

  def loss_fn(self, params, model_state, batch, rng) -> LossOutput:
    raise NotImplementedError

  def objective(self, params, model_state, batch, rng, loss_fn=None):
    """What the train step differentiates: (loss, `LossOutput`) of `loss_fn` (or of the
    phase's `loss_fn`), plus the online probe's loss when on.

    The probe's loss is the mean cross-entropy of `online_probe` on stop_gradient of
    outputs['features'] (V * N rows: the V views the method returned, in view order)
    against batch['label'] (N,) repeated per view, as solo-learn averages over its large
    crops. With the probe the returned record's metrics also hold 'loss' (the method's
    own, the logged loss), 'online_probe_loss' and 'online_probe_accuracy' (on the
    training views).
    """
    out = (loss_fn or self.loss_fn)(params, model_state, batch, rng)
    if not isinstance(out, LossOutput):
      raise TypeError(f'{self.name}.loss_fn must return a tlu.methods.output.LossOutput, '
                      f'not {type(out).__name__}')
    if not self.facts.online_probe:
      return out.loss, out
    features = out.outputs.get('features')
    labels = batch['label']
    if features is None or features.shape[0] % labels.shape[0]:
      raise ValueError(f'online_probe: {self.name} must return outputs["features"] '
                       f'of whole views of the batch ({labels.shape[0]} rows each)')
    labels = jnp.tile(labels, features.shape[0] // labels.shape[0])
    logits = self.model.apply({'params': params}, PROBE,
                              jax.lax.stop_gradient(features).astype(jnp.float32),
                              method='apply_head')
    probe_loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
    metrics = {**out.metrics, 'loss': out.loss, 'online_probe_loss': probe_loss,
               'online_probe_accuracy': accuracy}
    return out.loss + probe_loss, out.replace(metrics=jax.lax.stop_gradient(metrics))

  def after_update(self, state):
    return state

  def uses_host(self):
    return type(self).host_update is not Method.host_update

  def host_update(self, state, host):
    del host
    return state, {}

  def batches(self, splits, *, seed, process_index=0, process_count=1):
    """The training iterator (grain-style get_state/set_state) of the layout `inputs`
    (`tlu.methods.layouts.LAYOUTS`: which splits it reads, which keys a batch holds)."""
    return layouts.iterator(self, splits, seed=seed, process_index=process_index,
                            process_count=process_count)

  # ------------------------------------------------------------------ helpers for loss_fn

  def images(self, batch, rng, key='image'):
    """batch[key] uint8 (N, H, W, C) -> float32 in [0, 1], augmented if the method has one."""
    images = batch[key].astype(jnp.float32) / 255.0
    return images if self.augment is None else self.augment(rng, images)

  def views(self, batch, rng, key='image'):
    """The augmented views of batch[key] (uint8 (N, H, W, C)) as a list of float arrays.

    Two views of one augmentation by default; an augmentation spec with per-view
    pipelines or local crops gives those (`tlu.data.augment.make_augment`: `MultiView`).
    """
    images = batch[key].astype(jnp.float32) / 255.0
    if self.augment is None:
      raise ValueError(f'{self.name} needs an augmentation (config.augment)')
    return augment_lib.views(self.augment, rng, images)

  def forward(self, params, model_state, images, heads=()):
    """Training-mode forward pass: (outputs, updated batch_stats)."""
    out, updates = self.model.apply(
        {'params': params, 'batch_stats': model_state['batch_stats']}, images, train=self.mode,
        heads=heads, mutable=['batch_stats'])
    return out, updates.get('batch_stats', {})
