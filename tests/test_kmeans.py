"""k-means: agreement with scikit-learn's Lloyd from the same start, k-means++ quality,
empty clusters, chunked/streaming/sharded runs equal to the plain in-memory run."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from tlu.unsupervised import kmeans as kmeans_lib

K = 6
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _data(n=2000):
  # Overlapping blobs far from the origin: several iterations, and a float32 trap for
  # distance code that does not centre the data.
  x, _ = make_blobs(n_samples=n, centers=K, n_features=5, cluster_std=2.5, random_state=0)
  return (x + 50.0).astype(np.float32)


def _init(x, seed=1):
  return x[np.random.default_rng(seed).choice(len(x), K, replace=False)].copy()


@pytest.fixture(scope='module')
def data():
  x = _data()
  c0 = _init(x)
  return x, c0, kmeans_lib.kmeans(jax.random.key(0), x, K, init=c0, chunk_size=256)


def _sklearn(x, init, **kw):
  return KMeans(K, init=init, n_init=1, algorithm='lloyd', **kw).fit(x)


def test_matches_sklearn_from_same_init(data):
  x, c0, res = data
  ref = _sklearn(x, c0)
  np.testing.assert_allclose(float(res.inertia), ref.inertia_, rtol=1e-3)
  np.testing.assert_array_equal(np.asarray(res.labels), ref.labels_)
  np.testing.assert_allclose(np.asarray(res.centroids), ref.cluster_centers_, atol=1e-3)
  assert int(res.n_iter) > 1


def test_inertia_is_sum_of_squared_distances(data):
  x, _, res = data
  c = np.asarray(res.centroids, np.float64)
  d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(np.asarray(res.labels), d2.argmin(1))
  np.testing.assert_allclose(float(res.inertia), d2.min(1).sum(), rtol=1e-4)


def test_assign_is_brute_force_argmin_with_ties_to_lowest_index():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(700, 5)).astype(np.float32)
  c = rng.normal(size=(9, 5)).astype(np.float32)
  c[7] = c[2]  # exact duplicate: its points must go to cluster 2
  d2 = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
  labels, dist = kmeans_lib.assign(x, c, chunk_size=128)  # 5 full chunks and a tail
  np.testing.assert_array_equal(np.asarray(labels), d2.argmin(1))
  assert not (np.asarray(labels) == 7).any()
  np.testing.assert_allclose(np.asarray(dist), d2.min(1), rtol=1e-4, atol=1e-5)


def test_kmeans_plusplus_with_restarts_close_to_sklearn_best(data):
  x, _, _ = data
  res = kmeans_lib.kmeans(jax.random.key(3), x, K, n_init=3, chunk_size=256)
  best = KMeans(K, n_init=10, random_state=0).fit(x).inertia_
  assert float(res.inertia) <= best * 1.01
  assert len(np.unique(np.asarray(res.labels))) == K


def test_sample_weight_matches_sklearn(data):
  x, c0, _ = data
  w = np.random.default_rng(0).integers(0, 4, len(x)).astype(np.float32)
  res = kmeans_lib.kmeans(jax.random.key(0), x, K, init=c0, sample_weight=w,
                          chunk_size=256)
  ref = KMeans(K, init=c0, n_init=1, algorithm='lloyd').fit(x, sample_weight=w)
  np.testing.assert_allclose(float(res.inertia), ref.inertia_, rtol=1e-3)
  np.testing.assert_allclose(np.asarray(res.centroids), ref.cluster_centers_, atol=1e-3)


def test_empty_clusters_are_reseeded_with_farthest_points(data):
  x, c0, _ = data
  init = c0.copy()
  init[1] = init[0]            # a duplicate: ties go to cluster 0, cluster 1 starts empty
  init[4] = x.max(0) + 1000.0  # far from everything: starts empty
  res = kmeans_lib.kmeans(jax.random.key(0), x, K, init=init, chunk_size=256)
  c = np.asarray(res.centroids)
  assert np.isfinite(c).all()
  assert len(np.unique(c.round(3), axis=0)) == K
  assert (np.bincount(np.asarray(res.labels), minlength=K) > 0).all()
  # scikit-learn applies the same relocation rule; it may give the two empty
  # clusters their points in the other order, so compare up to a relabelling.
  ref = _sklearn(x, init)
  np.testing.assert_allclose(float(res.inertia), ref.inertia_, rtol=1e-3)
  assert adjusted_rand_score(ref.labels_, np.asarray(res.labels)) > 0.999


def test_single_chunk_lanes_and_streaming_equal_chunked(data):
  x, c0, res = data
  whole = kmeans_lib.kmeans(jax.random.key(0), x, K, init=c0, chunk_size=len(x))
  # 15 full chunks of 128 in 4 lanes: 3 loop steps, 3 leftover chunks, an 80-row tail.
  lanes = kmeans_lib.kmeans(jax.random.key(0), x, K, init=c0, chunk_size=128, lanes=4)
  stream = kmeans_lib.kmeans_streaming(
      lambda: (x[i:i + 300] for i in range(0, len(x), 300)), K, c0, return_labels=True,
      chunk_size=128)
  for other in (whole, lanes, stream):
    np.testing.assert_allclose(np.asarray(other.centroids), np.asarray(res.centroids),
                               atol=1e-3)
    np.testing.assert_array_equal(np.asarray(other.labels), np.asarray(res.labels))
    assert int(other.n_iter) == int(res.n_iter)
    np.testing.assert_allclose(float(other.inertia), float(res.inertia), rtol=1e-5)


_SHARDED_SCRIPT = textwrap.dedent('''
  import json, sys
  import jax, numpy as np
  sys.path.insert(0, {root!r})
  from tests.test_kmeans import K, _data, _init
  from tlu.train.mesh import make_mesh
  from tlu.unsupervised import kmeans as kmeans_lib
  x = _data({n}); c0 = _init(x)
  sharded = kmeans_lib.kmeans(jax.random.key(0), x, K, init=c0, mesh=make_mesh(),
                              chunk_size=64)
  single = kmeans_lib.kmeans(jax.random.key(0), x, K, init=c0, chunk_size=64)
  print(json.dumps(dict(
      devices=len(jax.devices()),
      inertia=[float(sharded.inertia), float(single.inertia)],
      n_iter=[int(sharded.n_iter), int(single.n_iter)],
      labels=[np.asarray(sharded.labels).tolist(), np.asarray(single.labels).tolist()],
      centroids=np.asarray(sharded.centroids).tolist())))
''')


def test_sharded_on_8_simulated_devices_matches_single_device_and_sklearn():
  # Imported here: the script imports this module outside pytest, without conftest on the path.
  from conftest import xla_flags  # pylint: disable=import-outside-toplevel
  n = 2003  # not a multiple of 8: exercises zero-weight padding
  env = dict(os.environ, XLA_FLAGS=xla_flags(8),
             JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, '-c', _SHARDED_SCRIPT.format(root=str(ROOT), n=n)],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                       check=True)
  got = json.loads(out.stdout.strip().splitlines()[-1])
  assert got['devices'] == 8
  x = _data(n)
  ref = _sklearn(x, _init(x))
  sharded_inertia, single_inertia = got['inertia']
  np.testing.assert_allclose(sharded_inertia, ref.inertia_, rtol=1e-3)
  np.testing.assert_allclose(sharded_inertia, single_inertia, rtol=1e-5)
  assert got['n_iter'][0] == got['n_iter'][1]
  assert len(got['labels'][0]) == n
  np.testing.assert_array_equal(got['labels'][0], got['labels'][1])
  np.testing.assert_array_equal(got['labels'][0], ref.labels_)
  np.testing.assert_allclose(got['centroids'], ref.cluster_centers_, atol=1e-3)
