"""What a method is: the objective of one training run, and everything it owns.

A method file defines a subclass of `Method` and registers it (`@register`, which
sets `METHOD` in its module so `tlu.methods.get(name)` finds it). It says:
  - `heads(config, num_classes)`: the heads it needs on top of the backbone;
  - `init_extra(variables, rng)`: method state beside the parameters (EMA target,
    queue, centre, pseudo-labels), kept in `TrainState.extra` and checkpointed;
  - `loss_fn(params, model_state, batch, rng) -> (loss, aux)`: pure, jit-compiled;
  - `after_update(state) -> state`: optional, inside the jit step after the optimizer;
  - `host_update(state, host) -> (state, {split: metrics})`: optional host hook run
    before the first step and every `host_every` steps (SHOT's pseudo-labels); what it
    changes goes into `state.extra`, so resume is exact;
  - `batches(splits, ...)`: which data it reads (labelled, images only, paired
    source+target, indexed target images);
  - `check(config)`: the ranges of its config values (ValueError naming key and value).
The loop, the step, checkpoints, freezing and evaluation belong to the house.

Regularisers compose by subclassing: a method variant that adds a penalty (BSP on
DANN, L2-SP on fine-tuning) is a method file whose `loss_fn` calls the parent's
and adds its term, and whose `init_extra` adds the state the penalty needs (the
source weights for L2-SP) beside the parent's; `aux['outputs']` (features,
logits) lets the penalty reuse the parent's forward pass.
"""

import jax.numpy as jnp

from tlu.data import augment as augment_lib, loader
from tlu.models.norm import Mode


def register(cls):
  """Class decorator: marks `cls` as its module's method (found by the module's name)."""
  import sys  # pylint: disable=import-outside-toplevel
  module = sys.modules[cls.__module__]
  cls.name = module.__name__.rsplit('.', 1)[-1]
  module.METHOD = cls
  return cls


class Method:
  """Base class; subclasses override what they need (see the module docstring).

  Attributes set at construction:
    config: the method's config block (`config.method`: its `name` and hyperparameters).
    model: the `tlu.models.Model` with the heads of `heads()`.
    num_steps: the run's number of optimizer steps (schedules such as GRL's lambda).
    batch_size: the global training batch; epoch_steps: steps per pass over splits.train;
    num_examples: len(splits.train).
    mode: the `Mode` that training forward passes use (frozen BatchNorm layers).
    augment: on-device `augment(key, images) -> images` or None.
    host_every: steps between `host_update` calls (0: only before the first step, if at all).
  """
  name = ''
  inputs = 'labelled'   # 'labelled' | 'images' | 'paired' | 'indexed' (see `batches`)
  from_source = False   # starts from a trained source model (source-free adaptation)
  uses_num_examples = False   # its state or schedule depends on len(splits.train)
  host_every = 0

  def __init__(self, config, model, *, num_steps, batch_size, epoch_steps, num_examples,
               mode=Mode(True), augment=None):
    self.config, self.model, self.num_steps, self.mode = config, model, num_steps, mode
    self.batch_size, self.epoch_steps, self.augment = batch_size, epoch_steps, augment
    self.num_examples = num_examples

  # ------------------------------------------------------------------ what a method declares

  @classmethod
  def example_config(cls):
    """Small valid hyperparameters ({key: value}, without `name`): tests and examples."""
    return {}

  @classmethod
  def check(cls, config):
    """Raises ValueError for a config value out of its range."""
    del config

  @classmethod
  def heads(cls, config, num_classes):
    """{name: tlu.models.heads.Head} the model needs for this method."""
    raise NotImplementedError

  def init_extra(self, variables, rng):
    del variables, rng
    return {}

  def loss_fn(self, params, model_state, batch, rng):
    raise NotImplementedError

  def after_update(self, state):
    return state

  def uses_host(self):
    return type(self).host_update is not Method.host_update

  def host_update(self, state, host):
    del host
    return state, {}

  def batches(self, splits, *, seed, process_index=0, process_count=1):
    """The training iterator (grain-style get_state/set_state).

    'labelled': {'image', 'label'} of splits.train; 'images': {'image'} of splits.train;
    'paired': splits.train's {'image', 'label'} with splits.target's images as
    'target_image'; 'indexed': {'image', 'index'} of splits.train (labels never read).
    """
    kw = dict(seed=seed, process_index=process_index, process_count=process_count)
    if self.inputs == 'labelled':
      return loader.train_iterator(splits.train, self.batch_size, **kw)
    if self.inputs == 'images':
      return loader.train_iterator(splits.train, self.batch_size, keys=('image',), **kw)
    if self.inputs == 'paired':
      return loader.paired_iterator(splits.train, splits.target, self.batch_size, **kw)
    if self.inputs == 'indexed':
      return loader.train_iterator(loader.Indexed(splits.train), self.batch_size,
                                   keys=('image', 'index'), **kw)
    raise ValueError(f'unknown inputs {self.inputs!r}')

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
