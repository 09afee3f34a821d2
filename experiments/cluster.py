"""k-means of raw pixels, PCA and learned features: `python -m experiments.cluster --config=configs/digits_cluster.py`.

Features: the backbone of `--config.source` (any run directory, at `--config.source_step`),
or of the task `config.pretrain`, trained first in `<workdir>/pretrain`. Each
representation is a `kmeans` evaluation instance (tlu/evaluate/kmeans_comparison.py);
summary.json: `<raw|pca|contrastive>/<acc|nmi|ari>`.
"""

import sys

import jax
import numpy as np

from experiments import common
from tlu.evaluate import kmeans_comparison as comparison, run_features
from tlu.evaluators import kmeans
from tlu.report import embedding
from tlu.train import mesh as mesh_lib, sweep, workdir as workdir_lib

DEFAULT_CONFIG = 'configs/digits_cluster.py'


def check(config, workdir, wired=False):
  """Every check before anything is written; returns (feature source, number of classes)."""
  common.check_batch(config.batch_size)
  shape, classes = run_features.task_shape(config.dataset)
  comparison.check(config, pixels=int(np.prod(shape)))
  common.check_workdir(workdir, config)
  return run_features.FeatureSource(config, workdir, shape, not wired), classes


def run(config, workdir, plan):
  (source, classes), ds, mesh = plan, config.dataset, mesh_lib.make_mesh()
  common.claim_workdir(workdir, config)
  backbone = source.backbone(mesh, should_stop=common.preempted)
  pixels, feats, labels = map(np.concatenate, zip(*run_features.pixels_and_features(
      backbone, ds, [ds[k] for k in comparison.ROWS[config.rows]], batch_size=config.batch_size,
      mesh=mesh)))
  k = config.num_clusters or classes
  reps = comparison.representations(pixels, feats, config.pca_components)
  summary, table = comparison.compare(reps, labels, k, config, mesh)
  print(table)
  picture = 'tsne.png' if config.tsne and jax.process_index() == 0 else ''
  if picture:
    x = reps[comparison.FEATURES][1]
    assigned = kmeans.cluster(x, k, seed=config.seed, n_init=config.n_init,
                              max_iter=config.max_iter)
    with workdir_lib.open_atomic(workdir_lib.path(workdir, picture)) as f:
      embedding.scatter_panels(f, embedding.tsne_2d(x, config.seed), [
          ('class', labels, 'class'), ('k-means cluster', assigned, 'cluster')],
                               title='t-SNE of the contrastive features')
  sweep.write(workdir, summary, comparison.report(config, ds.name, len(labels), k, backbone,
                                                  table, picture))


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
