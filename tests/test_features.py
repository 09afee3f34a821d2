"""Feature extraction: exact over a split, in order, the same on 1 and 8 devices."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tlu.data import loader, sources
from tlu.evaluate import features
from tlu.models import build_model
from tlu.train import mesh as mesh_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 64  # 360 test examples: 5 full batches and one padded one


@pytest.fixture(scope='module')
def model_and_variables():
  model = build_model({'name': 'cnn', 'num_classes': 10})
  # jit: one compile instead of one per op, and the same values as eager init.
  return model, jax.jit(model.init)(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))


@pytest.fixture(scope='module')
def digits_test(data_dir):
  return sources.open_source('tlu_digits', 'test', data_dir), sources.load_arrays(
      'tlu_digits', 'test', data_dir)


@pytest.fixture(scope='module')
def one_device_features(digits_test, model_and_variables):
  model, variables = model_and_variables
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  return features.extract_features(model, variables, digits_test[0], BATCH, mesh)


def test_features_equal_direct_apply_on_whole_split(digits_test, one_device_features,
                                                    model_and_variables):
  model, variables = model_and_variables
  arrays = digits_test[1]
  expected = model.apply(variables, arrays['image'] / 255.0, train=False)['features']
  feats, labels = one_device_features
  assert feats.shape == (360, 512) and feats.dtype == np.float32
  np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(labels, arrays['label'])


def test_array_features_equal_source_features(digits_test, one_device_features,
                                              model_and_variables):
  model, variables = model_and_variables
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  feats = features.extract_arrays_features(model, variables, digits_test[1]['image'], 48, mesh)
  np.testing.assert_allclose(feats, one_device_features[0], rtol=1e-5, atol=1e-5)


def test_process_slices_merge_to_original_order():
  source = [{'image': np.array([i]), 'label': i % 10} for i in range(23)]
  per_process = [list(loader.eval_batches(source, 6, process_index=p, process_count=3))
                 for p in range(3)]
  images = np.stack([np.concatenate([b['image'] for b in bs]) for bs in per_process])
  masks = np.stack([np.concatenate([b['mask'] for b in bs]) for bs in per_process])
  merged = features.merge_process_slices(images, masks)
  np.testing.assert_array_equal(merged[:, 0], np.arange(23))


_EIGHT_DEVICES = """
import json, sys
import jax, numpy as np
from tlu.data import sources
from tlu.evaluate import features
from tlu.models import build_model
from tlu.train import mesh as mesh_lib
model = build_model({'name': 'cnn', 'num_classes': 10})
variables = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))
mesh = mesh_lib.make_mesh()
source = sources.open_source('tlu_digits', 'test', sys.argv[1])
feats, labels = features.extract_features(model, variables, source, int(sys.argv[3]), mesh)
np.savez(sys.argv[2], features=feats, labels=labels)
print(json.dumps({'devices': jax.device_count(), 'mesh_size': mesh.size}))
"""


def test_eight_devices_give_the_same_features(tmp_path, data_dir, one_device_features):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT,
         'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  out_file = tmp_path / 'features.npz'
  proc = subprocess.run([sys.executable, '-c', _EIGHT_DEVICES, data_dir, str(out_file),
                         str(BATCH)], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  info = json.loads(proc.stdout.strip().splitlines()[-1])
  assert info == {'devices': 8, 'mesh_size': 8}
  got = np.load(out_file)
  np.testing.assert_allclose(got['features'], one_device_features[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(got['labels'], one_device_features[1])


def test_empty_image_array_fails(model_and_variables):
  model, variables = model_and_variables
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  with pytest.raises(ValueError, match='empty split'):
    features.extract_arrays_features(model, variables, np.zeros((0, 8, 8, 1), np.uint8), 8,
                                     mesh)
