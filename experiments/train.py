"""Supervised training: `python -m experiments.train --config=configs/digits_supervised.py`."""

import os
import time

import jax
import jax.numpy as jnp

from experiments import common
from tlu.data import loader, sources, subsets
from tlu.evaluate.classify import classifier_metrics
from tlu.models import build_model
from tlu.train import mesh as mesh_lib, objectives, optim, session
from tlu.train.state import TrainState
from tlu.train.step import accuracy_sums, make_eval_step

DEFAULT_CONFIG = 'configs/digits_supervised.py'


def make_augment(name):
  if not name:
    return None
  from tlu.data import augment  # pylint: disable=import-outside-toplevel
  return augment.make_augment(name)


def validate(config, workdir):
  """Every check that needs no compute; returns (dataset info, classes, model, tx, augment)."""
  common.check_batch(config.batch_size)
  common.check_batch(config.eval_batch_size, 'eval_batch_size')
  common.check_workdir(workdir, config)
  ds = config.dataset
  info = sources.dataset_info(ds.name, [ds.train_split, ds.eval_split], ds.data_dir)
  classes = tuple(ds.classes) or tuple(range(info.num_classes))
  unknown = sorted(set(classes) - set(range(info.num_classes)))
  if unknown:
    raise common.ConfigError(f'dataset.classes {unknown} are not labels of {ds.name}')
  try:
    model = build_model({**config.model.to_dict(), 'num_classes': len(classes)})
    tx = optim.base_optimizer(config.optimizer, config.steps, config.batch_size)
    augment = make_augment(config.augment)
  except ValueError as e:
    raise common.ConfigError(str(e)) from None
  return info, classes, model, tx, augment


def train(config, workdir):
  """Trains a classifier in `workdir` (resuming if it holds a checkpoint); returns the summary."""
  t0 = time.time()
  info, classes, model, tx, augment = validate(config, workdir)
  ds = config.dataset
  common.claim_workdir(workdir, config)

  mesh = mesh_lib.make_mesh()
  init_key = jax.random.key(config.seed)
  variables = jax.jit(model.init)(init_key, jnp.zeros((1,) + subsets.input_shape(ds, info),
                                                              jnp.float32))
  state = TrainState.create(variables, tx, config.seed)
  train_source = subsets.task_source(ds, ds.train_split)
  test_source = subsets.task_source(ds, ds.eval_split)
  batches = loader.train_iterator(train_source, config.batch_size, seed=config.seed,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count())
  eval_step = make_eval_step(accuracy_sums(model), mesh)
  evaluate = lambda s: classifier_metrics(eval_step, s, test_source, config.eval_batch_size, mesh)

  state, metrics, stopped = session.fit(
      workdir, state, objectives.supervised(model, config.label_smoothing, augment), tx, batches,
      mesh, num_steps=config.steps, evaluate=evaluate, log_every=config.log_every,
      eval_every=config.eval_every, checkpoint_every=config.checkpoint_every,
      keep_checkpoints=config.keep_checkpoints, should_stop=common.preempted,
      progress=config.progress)
  if stopped:
    common.fail(f'preempted at step {int(state.step)}; checkpoint saved, re-run to resume',
                common.EXIT_PREEMPTED)
  summary = {'test_accuracy': metrics['accuracy'], 'test_loss': metrics['loss'],
             'steps': int(state.step), 'wall_time_s': time.time() - t0}
  if jax.process_index() == 0:
    common.write_json(os.path.join(workdir, 'summary.json'), summary)
  return summary, state


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'train')
  summary, _ = train(config, workdir)
  print(f"test accuracy {summary['test_accuracy']:.4f} after {summary['steps']} steps; "
        f"run in {workdir}")


if __name__ == '__main__':
  common.launch(main, DEFAULT_CONFIG)
