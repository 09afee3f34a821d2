"""Contrastive pretraining: `python -m experiments.pretrain --config=configs/digits_simclr.py`.

SimCLR on the training split without its labels; every `eval_every` steps and at
the end the frozen backbone is judged by kNN, linear probes and k-means
(labels are read for that evaluation only). The raw-pixel baseline of the same
evaluation goes into summary.json as `pixels_*`.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from tlu.data import augment as augment_lib, loader, subsets, sources
from tlu.evaluate.features import extract_features
from tlu.evaluate.representation import KMEANS_ROWS, PROBE_INPUTS, representation_metrics
from tlu.models import build_model
from tlu.train import mesh as mesh_lib, optim, session
from tlu.train.state import TrainState
from tlu.unsupervised.simclr import simclr

DEFAULT_CONFIG = 'configs/digits_simclr.py'


def validate(config, workdir):
  """Every check that needs no compute; returns (dataset info, model, tx, loss_fn, eval kwargs)."""
  common.check_batch(config.batch_size)
  common.check_batch(config.eval_batch_size, 'eval_batch_size')
  common.check_workdir(workdir, config)
  if config.temperature <= 0:
    raise common.ConfigError(f'temperature={config.temperature} must be > 0')
  eval_kwargs = config.eval.to_dict()
  for key, allowed in (('kmeans_rows', KMEANS_ROWS), ('probe_input', PROBE_INPUTS)):
    if eval_kwargs[key] not in allowed:
      raise common.ConfigError(f'eval.{key}={eval_kwargs[key]!r}; use one of {allowed}')
  ds = config.dataset
  info = sources.dataset_info(ds.name, [ds.train_split, ds.eval_split], ds.data_dir)
  try:
    model = build_model(config.model.to_dict())
    tx = optim.base_optimizer(config.optimizer, config.steps, config.batch_size)
    loss_fn = simclr(model, augment_lib.make_augment(config.augment), config.temperature)
  except (ValueError, TypeError) as e:
    raise common.ConfigError(str(e)) from None
  return info, model, tx, loss_fn, eval_kwargs


def _images_and_labels(source):
  examples = [source[i] for i in range(len(source))]
  return (np.stack([np.asarray(ex['image']) for ex in examples]),
          np.asarray([int(ex['label']) for ex in examples]))


def pixel_baseline(train_source, test_source, num_classes, eval_kwargs):
  """The same evaluation on flattened raw pixels in [0, 1]: what pretraining must beat."""
  (x_train, y_train), (x_test, y_test) = map(_images_and_labels, (train_source, test_source))
  flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
  return representation_metrics(flat(x_train), y_train, flat(x_test), y_test, num_classes,
                                **eval_kwargs)


def pretrain(config, workdir):
  """Runs SimCLR in `workdir` (resuming if it holds a checkpoint); returns (summary, state)."""
  t0 = time.time()
  info, model, tx, loss_fn, eval_kwargs = validate(config, workdir)
  ds = config.dataset
  common.claim_workdir(workdir, config)

  mesh = mesh_lib.make_mesh()
  variables = jax.jit(model.init)(
      jax.random.key(config.seed), jnp.zeros((1,) + subsets.input_shape(ds, info), jnp.float32))
  state = TrainState.create(variables, tx, config.seed)
  train_source = subsets.task_source(ds, ds.train_split)
  test_source = subsets.task_source(ds, ds.eval_split)
  num_classes = len(train_source.classes)
  # Only images are read for training: labels never reach the objective.
  batches = loader.train_iterator(train_source, config.batch_size, seed=config.seed,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count(), keys=('image',))

  def evaluate(s):
    train_feats, train_labels = extract_features(model, s.variables, train_source,
                                                 config.eval_batch_size, mesh)
    test_feats, test_labels = extract_features(model, s.variables, test_source,
                                               config.eval_batch_size, mesh)
    return representation_metrics(train_feats, train_labels, test_feats, test_labels,
                                  num_classes, **eval_kwargs)

  last_train = {}
  state, metrics, stopped = session.fit(
      workdir, state, loss_fn, tx, batches, mesh, num_steps=config.steps, evaluate=evaluate,
      log_every=config.log_every, eval_every=config.eval_every,
      checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
      should_stop=common.preempted, progress=config.progress, desc='pretrain',
      on_log=lambda step, m: last_train.update(m))
  if stopped:
    common.fail(f'preempted at step {int(state.step)}; checkpoint saved, re-run to resume',
                common.EXIT_PREEMPTED)
  summary = {**metrics, 'steps': int(state.step)}
  if last_train:
    summary.update({'train_loss': last_train['loss'],
                    'train_contrastive_accuracy': last_train['contrastive_accuracy']})
  if config.pixel_baseline:
    pixels = pixel_baseline(train_source, test_source, num_classes, eval_kwargs)
    summary.update({f'pixels_{k}': v for k, v in pixels.items()})
  summary['wall_time_s'] = time.time() - t0
  if jax.process_index() == 0:
    common.write_json(os.path.join(workdir, 'summary.json'), summary)
  return summary, state


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'pretrain')
  s, _ = pretrain(config, workdir)
  print(f"kNN {s['knn_accuracy']:.4f}, linear probe {s['linear_probe_accuracy']:.4f}, "
        f"{config.eval.labels_per_class}/class probe {s.get('few_shot_probe_accuracy', 0):.4f}, "
        f"k-means ACC {s['kmeans_acc']:.4f} NMI {s['kmeans_nmi']:.4f} ARI {s['kmeans_ari']:.4f} "
        f"after {s['steps']} steps in {s['wall_time_s']:.0f}s; run in {workdir}")


if __name__ == '__main__':
  common.launch(main, DEFAULT_CONFIG)
