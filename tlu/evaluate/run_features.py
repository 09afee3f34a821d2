"""Features of a dataset split: raw pixels, or the backbone of any run directory's checkpoint.

The stages that study a representation (k-means, anomaly detection) read it from a
run: one given by the user (`source`), or a pretraining task they train first.
`FeatureSource` checks either before the stage writes anything, then yields a
`Backbone`; any run -- supervised, contrastive, adapted -- is measured the same way,
since the backbone output is the feature and heads are not needed.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tlu import checks
from tlu.data import sources, subsets
from tlu.evaluate.features import extract_features
from tlu.models import build_model
from tlu.train import task, workdir as workdir_lib
from tlu.transfer.pretrained import PretrainedError, load_pretrained


def task_shape(ds):
  """(model input shape (H, W, C), number of classes) of dataset config `ds`, without reading it."""
  checks.check_values(ds, subsets.RANGES, 'dataset.')
  info = sources.dataset_info(ds.name, [ds.train_split, ds.eval_split], ds.get('data_dir'))
  return tuple(subsets.input_shape(ds, info)), len(ds.get('classes', ())) or info.num_classes


def split_pixels(ds, split):
  """(pixels (N, H*W*C) float32 in [0, 1], labels (N,)) of dataset config `ds`'s `split`,
  as the model sees them (classes and image fitting applied)."""
  source = subsets.task_source(ds, split)
  examples = [source[i] for i in range(len(source))]
  images = np.stack([e['image'] for e in examples])
  return (images.reshape(len(images), -1).astype(np.float32) / 255.0,
          np.asarray([e['label'] for e in examples]))


@dataclasses.dataclass(frozen=True)
class Backbone:
  """The backbone of one checkpoint: `model` (no heads), its `variables`, where it came from."""
  run_dir: str
  step: int
  model: Any
  variables: Any

  def features(self, ds, split, *, batch_size, mesh):
    """(features (N, F) float32, labels (N,)) of dataset config `ds`'s `split`."""
    return extract_features(self.model, self.variables, subsets.task_source(ds, split),
                            batch_size, mesh)


def _check_fits(model, variables, image_shape, what):
  """Traces the backbone with `variables` (arrays or shapes) on `image_shape` images, shapes
  only; PretrainedError if it does not take them."""
  x = jax.ShapeDtypeStruct((1,) + tuple(image_shape), jnp.float32)
  try:
    jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
  except Exception as e:  # flax and lax raise several types for shape mismatches
    raise PretrainedError(f'the backbone of {what} does not take {tuple(image_shape)} images: '
                          f'{_first_line(e)}') from None


def _first_line(e):
  text = str(e).strip().strip('"\'')
  return f'{type(e).__name__}: {text.splitlines()[0]}' if text else type(e).__name__


def load_backbone(run_dir, step=None, config_dir=None, image_shape=None):
  """The backbone of `run_dir`'s checkpoint at `step` (default: the latest).

  config_dir: see `load_pretrained`. image_shape: (H, W, C) it must take (checked on
  shapes only). Raises PretrainedError (a ValueError) saying what is wrong.
  """
  try:
    variables, model_cfg, step = load_pretrained(run_dir, step, config_dir)
  except PretrainedError:
    raise
  except Exception as e:  # orbax raises Key/Value/OSError... for a damaged checkpoint
    raise PretrainedError(f'the checkpoint of {run_dir} does not load: {_first_line(e)}') from None
  if 'backbone' not in variables['params']:
    raise PretrainedError(f'the checkpoint of {run_dir} holds no backbone parameters')
  try:
    model = build_model(model_cfg)
  except (ValueError, KeyError) as e:
    raise PretrainedError(f'the model of {run_dir} cannot be built: {e}') from None
  variables = {'params': {'backbone': variables['params']['backbone']},
               'batch_stats': {k: v for k, v in variables['batch_stats'].items()
                               if k == 'backbone'}}
  if image_shape is not None:
    _check_fits(model, variables, image_shape, run_dir)
  return Backbone(str(run_dir), step, model, variables)


def features_of_run(workdir, ds, split, *, batch_size=256, mesh, step=None, config_dir=None):
  """(features (N, F) float32, labels (N,)) of dataset config `ds`'s `split` through
  `workdir`'s backbone."""
  return load_backbone(workdir, step, config_dir).features(ds, split, batch_size=batch_size,
                                                           mesh=mesh)


def pixels_and_features(backbone, ds, splits, *, batch_size, mesh):
  """Per split of `splits`: (pixels (N, H*W*C) in [0, 1], backbone features (N, F), labels (N,)),
  the same rows in the same order in all three."""
  out = []
  for split in splits:
    pixels, labels = split_pixels(ds, split)
    feats, y = backbone.features(ds, split, batch_size=batch_size, mesh=mesh)
    np.testing.assert_array_equal(y, labels)
    out.append((pixels, feats, labels))
  return out


class FeatureSource:
  """The run whose backbone a stage reads: `config.source` (at `config.source_step`), or the
  task `config.pretrain`, trained in `<workdir>/pretrain` when `backbone()` is first asked.

  Every check happens here, before the stage writes anything: a given source must have a
  config.json and a checkpoint that loads and takes `image_shape` images; a pretraining
  task must pass `tlu.train.task.check_task` and fit its workdir. ValueError says why.
  check_source=False: the given source is made later by the same invocation (a pipeline).
  """

  def __init__(self, config, workdir, image_shape, check_source=True):
    self.image_shape, self.step, self._backbone = tuple(image_shape), config.source_step, None
    self.run_dir = config.source or str(workdir_lib.path(workdir, 'pretrain'))
    self.task = None if config.source else config.pretrain
    if config.source and check_source:
      self._backbone = load_backbone(config.source, self.step, image_shape=self.image_shape)
    elif not config.source:
      workdir_lib.check(self.run_dir, task.config_json(self.task))
      with checks.under('pretrain.'):
        task.check_values(self.task)
        self.splits = task.task_splits(self.task.dataset)
        task.check_task(self.task, self.splits)
      if (self.task.get('steps', 0) or self.task.get('epochs', 0)) < 1:
        raise ValueError(f'pretrain.steps={self.task.get("steps")} trains nothing: set '
                         'pretrain.steps (or pretrain.epochs) >= 1')
      model = build_model(self.task.model)   # as trained on its data, it must take the stage's
      trained = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(
          (1,) + tuple(self.splits.image_shape), jnp.float32))
      _check_fits(model, trained, self.image_shape, 'config.pretrain')

  def needs_training(self):
    return self.task is not None and not workdir_lib.done(self.run_dir)

  def backbone(self, mesh, should_stop=lambda: False):
    """The source's `Backbone`, after training the pretraining task (or resuming it) if needed."""
    if self._backbone is None:
      if self.needs_training():
        task.fit_task(task.Trainer(mesh), self.task, self.run_dir, self.splits,
                      summary_prefix='', should_stop=should_stop, desc='pretrain')
      self._backbone = load_backbone(self.run_dir, self.step, image_shape=self.image_shape)
    return self._backbone
