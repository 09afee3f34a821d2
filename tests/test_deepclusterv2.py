"""DeepCluster v2 against a numpy transcription of solo-learn's deepclusterv2_loss_func,
KMeans.cluster_memory and the method's training step (solo/losses/deepclusterv2.py,
solo/utils/kmeans.py, solo/methods/deepclusterv2.py); the memory bank's update, the
checks and a short run through the house."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import methods_check
from configs import digits_ssl
from tlu.methods.deepclusterv2 import DeepClusterV2
from tlu.methods.facts import RunFacts
from tlu.models import build_model
from tlu.train import mesh as mesh_lib, task
from tlu.unsupervised import deepcluster as dc
from method_block import check_block

M, B, EPOCH = 16, 8, 2   # examples, batch, steps per epoch of the method fixture


def _normalize(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def np_loss_func(outputs, assignments, temperature):
  """solo-learn: per head, F.cross_entropy(outputs[h].view(-1, C) / T,
  assignments[h].repeat(V), ignore_index=-1); the sum over heads / P. float64; outputs[h]
  (V, N, C_h) (a list: heads of different sizes), assignments (P, N)."""
  loss = 0.0
  for h, out in enumerate(outputs):
    scores = out.reshape(-1, out.shape[-1]) / temperature
    targets = np.tile(assignments[h], out.shape[0])
    scores = scores - scores.max(1, keepdims=True)
    log_p = scores - np.log(np.exp(scores).sum(1, keepdims=True))
    keep = targets != -1
    loss += -np.mean(log_p[keep, targets[keep]])
  return loss / len(outputs)


def np_cluster_memory(local_memory_index, local_memory_embeddings, num_prototypes,
                      kmeans_iters, dataset_size, random_idx):
  """solo-learn's KMeans.cluster_memory (one process); random_idx[i_K]: its randperm[:K]."""
  num_large_crops, j = local_memory_embeddings.shape[0], 0
  assignments = -np.ones((len(num_prototypes), dataset_size), np.int64)
  centroids_list = []
  for i_K, K in enumerate(num_prototypes):
    centroids = local_memory_embeddings[j][random_idx[i_K]].copy()
    for n_iter in range(kmeans_iters + 1):
      dot_products = local_memory_embeddings[j] @ centroids.T
      local_assignments = dot_products.argmax(1)
      if n_iter == kmeans_iters:
        break
      where_helper = [np.nonzero(local_assignments == k)
                      for k in range(local_assignments.max() + 1)]   # get_indices_sparse
      counts = np.zeros(K, np.int64)
      emb_sums = np.zeros((K, local_memory_embeddings.shape[-1]))
      for k in range(len(where_helper)):
        if len(where_helper[k][0]) > 0:
          emb_sums[k] = np.sum(local_memory_embeddings[j][where_helper[k][0]], axis=0)
          counts[k] = len(where_helper[k][0])
      mask = counts > 0
      centroids[mask] = emb_sums[mask] / counts[mask][:, None]
      centroids = _normalize(centroids)
    centroids_list.append(centroids)
    assignments[i_K][local_memory_index] = local_assignments
    j = (j + 1) % num_large_crops
  return assignments, centroids_list


def test_loss_is_solo_learns_with_ignored_rows_and_zero_without_assignments():
  rng = np.random.default_rng(0)
  logits = [rng.normal(size=(2, 6, k)) for k in (5, 3)]
  targets = np.stack([rng.integers(0, 5, 6), rng.integers(0, 3, 6)])
  targets[0, [1, 4]] = -1
  targets[1, 2] = -1
  got, assigned = dc.deepclusterv2_loss([jnp.asarray(x, jnp.float32) for x in logits],
                                        jnp.asarray(targets, jnp.int32), 0.1)
  np.testing.assert_allclose(float(got), np_loss_func(logits, targets, 0.1), rtol=1e-5)
  assert float(assigned) == 9 / 12
  # No assigned row (the first epoch): 0 and a zero gradient, not NaN.
  none = -jnp.ones((2, 6), jnp.int32)
  loss = lambda x: dc.deepclusterv2_loss([x, x[..., :3]], none, 0.1)[0]
  grad = jax.grad(loss)(jnp.asarray(logits[0], jnp.float32))
  assert float(loss(jnp.asarray(logits[0], jnp.float32))) == 0.0
  assert np.all(np.asarray(grad) == 0)


def _memory(seed, views=2, examples=30, dim=6):
  rng = np.random.default_rng(seed)
  return _normalize(rng.normal(size=(views, examples, dim))).astype(np.float32)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _cluster(memory, seen, init_index, num_prototypes, iters):
  return dc.cluster_memory(jax.random.key(0), memory, seen, num_prototypes, iters, init_index)


def test_cluster_memory_is_solo_learns_kmeans_on_the_seen_rows():
  memory = _memory(1)
  rng = np.random.default_rng(2)
  seen_idx = rng.permutation(30)[:22]   # the epoch's rows, in solo-learn's memory order
  seen = np.zeros(30, bool)
  seen[seen_idx] = True
  num_prototypes = (4, 5, 3)
  random_idx = [rng.permutation(22)[:k] for k in num_prototypes]   # local positions
  want_a, want_c = np_cluster_memory(seen_idx, memory[:, seen_idx].astype(np.float64),
                                     num_prototypes, 10, 30, random_idx)
  got_a, got_c = _cluster(memory, seen, [seen_idx[r] for r in random_idx], num_prototypes, 10)
  np.testing.assert_array_equal(np.asarray(got_a), want_a)   # -1 for the unseen
  for got, want in zip(got_c, want_c):
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
  # Head 2 clusters view 0 again (j = h mod V), so its centroids are not view 1's.
  assert not np.allclose(np.asarray(got_c[1]), np_cluster_memory(
      seen_idx, memory[:1, seen_idx].astype(np.float64), (5,), 10, 30, random_idx[1:2])[1][0])


def test_a_centroid_left_without_rows_keeps_its_value():
  memory, seen = _memory(4), np.ones(30, bool)
  random_idx = [np.array([5, 5, 11, 20])]   # a repeated row: its second copy loses the tie
  want_a, want_c = np_cluster_memory(np.arange(30), memory.astype(np.float64), (4,), 1, 30,
                                     random_idx)
  got_a, got_c = _cluster(memory, seen, random_idx, (4,), 1)
  np.testing.assert_allclose(want_c[0][1], memory[0, 5], atol=1e-6)   # no rows: kept
  np.testing.assert_array_equal(np.asarray(got_a), want_a)
  np.testing.assert_allclose(np.asarray(got_c[0]), want_c[0], atol=1e-5)


def test_initial_centroids_are_distinct_seen_rows():
  memory, seen = _memory(3)[0], np.arange(30) % 3 == 0   # 10 seen rows
  draws = set()
  for key in range(5):
    init = np.asarray(dc.init_centroids(jax.random.key(key), memory, seen, 4))
    rows = [int(np.argmin(np.abs(memory - c).sum(1))) for c in init]
    assert len(set(rows)) == 4 and all(seen[r] for r in rows)
    draws.add(tuple(rows))
  assert len(draws) > 1   # the key picks them


@pytest.fixture(scope='module')
def method():
  config = ml_collections.ConfigDict(DeepClusterV2.example_config())
  model = build_model({'name': 'mlp', 'widths': (16,), 'features': 8},
                      DeepClusterV2.heads(config, 3))
  brightness = lambda key, x: x ** jax.random.uniform(key, (), minval=0.5, maxval=2.0)
  m = DeepClusterV2(config, model, RunFacts(num_steps=8, batch_size=B, epoch_steps=EPOCH,
                                            num_examples=M), augment=brightness)
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
  return m, variables, jax.jit(m.loss_fn)


def _step(method, step, seen, index, seed=4):
  m, variables, loss_fn = method
  extra = m.init_extra(variables, jax.random.key(3))
  extra['seen'] = jnp.asarray(seen)
  images = np.random.default_rng(seed).integers(0, 256, (B, 4, 4, 1), dtype=np.uint8)
  batch = {'image': images, 'index': np.asarray(index, np.int32)}
  model_state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(step),
                 'extra': extra}
  rng = jax.random.key(5)
  out = loss_fn(variables['params'], model_state, batch, rng)
  x = jnp.concatenate(m.views(batch, jax.random.split(rng)[0]))
  z = m.model.apply(variables, x, train=True, heads=('projector',),
                    mutable=['batch_stats'])[0]['projector']
  z = _normalize(np.asarray(z, np.float64)).reshape(2, B, -1)
  return extra, out, z


INDEX = [13, 2, 7, 0, 9, 15, 4, 11]


def test_epoch_start_runs_solo_learns_kmeans_then_the_loss_uses_its_prototypes(method):
  seen = np.arange(M) % 4 != 1   # 12 rows written so far
  extra, out, z = _step(method, EPOCH, seen, INDEX)
  memory = np.asarray(extra['memory'], np.float64)
  keys = jax.random.split(jax.random.split(jax.random.key(5))[1], 2)
  seen_idx = np.nonzero(seen)[0]
  random_idx = []
  for h, (key, k) in enumerate(zip(keys, (4, 3))):
    init = np.asarray(dc.init_centroids(key, extra['memory'][h % 2], jnp.asarray(seen), k))
    rows = [int(np.argmin(np.abs(memory[h % 2] - c).sum(1))) for c in init]
    random_idx.append(np.searchsorted(seen_idx, rows))
  want_a, want_c = np_cluster_memory(seen_idx, memory[:, seen_idx], (4, 3), 10, M, random_idx)
  np.testing.assert_array_equal(np.asarray(out.extra['assignments']), want_a)
  for h, want in enumerate(want_c):
    np.testing.assert_allclose(np.asarray(out.extra['prototypes'][f'head_{h}']), want,
                               atol=1e-5)
  logits = [np.einsum('vnd,kd->vnk', z, c) for c in want_c]
  np.testing.assert_allclose(float(out.loss), np_loss_func(logits, want_a[:, INDEX], 0.1),
                             rtol=1e-4)
  assert float(out.metrics['assigned_fraction']) == np.mean(seen[INDEX])


def test_memory_update_writes_the_batch_rows_only(method):
  seen = np.zeros(M, bool)
  seen[[1, 2, 3]] = True
  extra, out, z = _step(method, 1, seen, INDEX)   # mid-epoch: no k-means
  old, new = np.asarray(extra['memory']), np.asarray(out.extra['memory'])
  np.testing.assert_allclose(new[:, INDEX], z, atol=1e-6)
  others = np.setdiff1d(np.arange(M), INDEX)
  np.testing.assert_array_equal(new[:, others], old[:, others])
  want_seen = seen.copy()
  want_seen[INDEX] = True
  np.testing.assert_array_equal(np.asarray(out.extra['seen']), want_seen)
  for key in ('assignments', 'prototypes'):
    for a, b in zip(jax.tree.leaves(extra[key]), jax.tree.leaves(out.extra[key])):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert float(out.loss) == 0.0   # no example has an assignment yet
  # An epoch start keeps the seen marks (every example's latest row is clustered).
  _, out, _ = _step(method, 2 * EPOCH, seen, INDEX)
  np.testing.assert_array_equal(np.asarray(out.extra['seen']), want_seen)


@pytest.mark.parametrize('key,value', [('temperature', 0.0), ('kmeans_iters', 0),
                                       ('num_prototypes', ()), ('num_prototypes', (4, 0)),
                                       ('projector', ())])
def test_check_names_the_bad_value(key, value):
  config = ml_collections.ConfigDict({**DeepClusterV2.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'^method\.{key}=[^\n]*$'):
    check_block(DeepClusterV2, config)


def test_more_prototypes_than_an_epoch_writes_are_refused():
  config = ml_collections.ConfigDict({**DeepClusterV2.example_config(), 'num_prototypes': (9,)})
  facts = RunFacts(num_steps=4, batch_size=4, epoch_steps=2, num_examples=16)
  with pytest.raises(ValueError, match=r'^method\.num_prototypes=\(9,\)[^\n]*8 examples'):
    DeepClusterV2(config, None, facts)


def test_a_short_run_through_the_house_clusters_every_epoch(tmp_path):
  cfg = methods_check.config('deepclusterv2')
  cfg.steps = 6
  logged = []
  trainer = task.Trainer(mesh_lib.make_mesh(jax.devices()[:1]))
  state, _, _ = trainer.run(cfg, str(tmp_path / 'run'), methods_check.splits(),
                            on_log=lambda step, m: logged.append(
                                (m['loss'], m['assigned_fraction'])))
  losses, assigned = np.array(logged).T
  assert len(logged) == 6 and np.all(np.isfinite(losses))
  np.testing.assert_array_equal(assigned, [0, 0, 1, 1, 1, 1])   # 16 examples, 8 a batch
  assert losses[0] == losses[1] == 0 and np.all(losses[2:] > 0)
  extra = jax.device_get(state.extra)
  assert extra['assignments'].min() >= 0 and extra['seen'].all()
  for h, k in enumerate((4, 3)):
    np.testing.assert_allclose(np.linalg.norm(extra['prototypes'][f'head_{h}'], axis=1), 1.0,
                               rtol=1e-5)
  assert extra['prototypes']['head_0'].shape == (4, 8)


def test_digits_config_trains_without_the_online_probe():
  cfg = digits_ssl.get_config('deepclusterv2')
  assert cfg.method.name == 'deepclusterv2' and not cfg.online_probe
  assert 'online_probe' not in cfg.evals
  task.check_task(cfg)
