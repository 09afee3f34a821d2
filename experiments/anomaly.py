"""One-class anomaly detection on features: `python -m experiments.anomaly --config=configs/digits_anomaly.py`."""

import functools
import os

import jax
import numpy as np

from experiments import common
from experiments.cluster import claim_with_representation, task_arrays
from tlu.data import sources
from tlu.evaluate.anomaly_eval import one_class_auroc_per_class
from tlu.evaluate.representation import l2_normalize
from tlu.evaluate.run_features import features_of_run
from tlu.report import tables
from tlu.train import mesh as mesh_lib
from tlu.unsupervised import anomaly, kmeans as kmeans_lib


def scorers(config):
  """{name: score_fn(normal_train (n, d), test (m, d)) -> (m,)}, higher = more anomalous."""

  def kmeans_distance(train, test):
    k = min(config.kmeans_clusters, len(train))
    result = kmeans_lib.kmeans(jax.random.key(config.seed), train, k, n_init=5)
    return anomaly.kmeans_distance_score(result.centroids, test)

  return {
      f'{config.knn_k}-NN distance': functools.partial(anomaly.knn_distance_score,
                                                       k=config.knn_k),
      'Mahalanobis': functools.partial(anomaly.mahalanobis_score,
                                       shrinkage=config.mahalanobis_shrinkage),
      f'k-means ({config.kmeans_clusters}) distance': kmeans_distance,
  }


def check(config):
  """The anomaly config's own checks (no compute, no other run needed)."""
  common.check_batch(config.batch_size)
  if config.knn_k < 1 or config.kmeans_clusters < 1:
    raise common.ConfigError('knn_k and kmeans_clusters must be >= 1')
  if config.mahalanobis_shrinkage < 0 or config.mahalanobis_shrinkage > 1:
    raise common.ConfigError('mahalanobis_shrinkage must be in [0, 1]')
  ds = config.dataset
  sources.dataset_info(ds.name, [ds.train_split, ds.eval_split], ds.data_dir)


def representations(config, mesh, feature_dir):
  """{name: (train (N, d), test (M, d))} and the labels of both splits."""
  ds = config.dataset
  out, labels = {'raw pixels': [], 'contrastive features': []}, []
  for split in (ds.train_split, ds.eval_split):
    images, _ = task_arrays(ds, split)
    out['raw pixels'].append(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    feats, y = features_of_run(feature_dir, ds, split,
                               batch_size=config.batch_size, mesh=mesh,
                               step=config.features_step)
    out['contrastive features'].append(l2_normalize(feats))
    labels.append(y)
  return {k: tuple(v) for k, v in out.items()}, tuple(labels)


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'anomaly')
  check(config)
  ds = config.dataset
  feature_dir = claim_with_representation(config, workdir)
  mesh = mesh_lib.make_mesh()
  reps, (y_train, y_test) = representations(config, mesh, feature_dir)
  classes = [int(c) for c in np.unique(y_test)]
  rows, summary = [], {}
  for rep_name, (train, test) in reps.items():
    for score_name, fn in scorers(config).items():
      per_class = one_class_auroc_per_class(fn, train, y_train, test, y_test)
      mean = float(np.mean(list(per_class.values())))
      rows.append((rep_name, score_name, *[per_class[c] for c in classes], mean))
      summary[f'{rep_name}/{score_name}/mean_auroc'] = mean
      print(f'{rep_name:>22} {score_name:>22}: mean AUROC {mean:.4f}')
  if jax.process_index() != 0:
    return
  common.write_json(os.path.join(workdir, 'summary.json'), summary)
  table = tables.key_value_table(
      rows, ('features', 'score', *[f'normal={c}' for c in classes], 'mean'))
  common.write_text(os.path.join(workdir, 'report.md'), (
      f'# One-class anomaly detection on {ds.name}\n\n'
      'Each class in turn is normal: the scorer sees only its training images; every test '
      'image of another class is an anomaly. AUROC (anomaly = positive). Features: backbone '
      f'of `{feature_dir}`, L2-normalised; that backbone may have seen images of every class '
      '(without labels) during its own training.\n\n{table}\n'))
  print(f'report: {os.path.join(workdir, "report.md")}')


if __name__ == '__main__':
  common.launch(main, 'configs/digits_anomaly.py')
