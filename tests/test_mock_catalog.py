"""A TFDS catalog dataset (CIFAR-10, mocked: no download, no TensorFlow) through the whole train path."""

import json
import os

import numpy as np
import tensorflow_datasets as tfds

from configs import digits_supervised
from tlu.data import loader, subsets
from tlu.train import mesh as mesh_lib, task


def _config(data_dir):
  c = digits_supervised.get_config()
  c.dataset.name, c.dataset.data_dir = 'cifar10', data_dir
  c.steps, c.batch_size, c.eval_batch_size = 4, 8, 8
  c.log_every, c.eval_every, c.checkpoint_every, c.progress = 2, 0, 2, False
  return c


def test_cifar10_mock_trains_and_writes_the_run_directory(tmp_path):
  with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
    source = subsets.task_source(_config(str(tmp_path / 'tfds')).dataset, 'train')
    batch = next(loader.train_iterator(source, 8, seed=0))
    assert batch['image'].shape == (8, 32, 32, 3) and batch['image'].dtype == np.uint8
    assert batch['label'].max() < 10
    config = _config(str(tmp_path / 'tfds'))
    summary, state = task.fit_task(task.Trainer(mesh_lib.make_mesh()), config,
                                   str(tmp_path / 'run'), task.task_splits(config.dataset))
  assert int(state.step) == 4 and 0.0 <= summary['test_accuracy'] <= 1.0
  assert json.load(open(tmp_path / 'run' / 'summary.json'))['steps'] == 4
  assert state.params['head']['kernel'].shape == (512, 10)
  assert sorted(os.listdir(tmp_path / 'run' / 'checkpoints')) == ['2', '4']


def test_mocked_images_can_be_fitted_to_another_shape(tmp_path):
  with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = _config(str(tmp_path)).dataset
    ds.image_size, ds.channels = 16, 1
    example = subsets.task_source(ds, 'test')[0]
  assert example['image'].shape == (16, 16, 1)
