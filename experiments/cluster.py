"""k-means of raw pixels, PCA and learned features: `python -m experiments.cluster --config=configs/digits_cluster.py`.

Features: the backbone of `--config.source` (any run directory, at `--config.source_step`),
or of the task `config.pretrain`, trained first in `<workdir>/pretrain`. Each
representation is a `kmeans` evaluation instance (tlu/evaluate/kmeans_comparison.py);
summary.json: `<raw|pca|contrastive>/<acc|nmi|ari>`. With 'scan' in `config.algorithms`,
SCAN's clustering step and self-labelling train from that source in `<workdir>/scan` and
`<workdir>/scan_selflabel` (tlu/evaluate/scan_clustering.py):
`contrastive/<scan|scan_selflabel>_<acc|nmi|ari>`.
"""

import sys

import jax
import numpy as np

from experiments import common
from tlu.evaluate import kmeans_comparison as comparison, run_features, scan_clustering
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
  source = run_features.FeatureSource(config, workdir, shape, not wired)
  model = None if wired and config.source else scan_clustering.source_model(config)
  scan_clustering.check(config, workdir, config.num_clusters or classes, model)
  return source, classes


def run(config, workdir, plan):
  (source, classes), ds, mesh = plan, config.dataset, mesh_lib.make_mesh()
  common.claim_workdir(workdir, config)
  backbone = source.backbone(mesh, should_stop=common.preempted)
  pixels, feats, labels = map(np.concatenate, zip(*run_features.pixels_and_features(
      backbone, ds, [ds[k] for k in comparison.ROWS[config.rows]], batch_size=config.batch_size,
      mesh=mesh)))
  k = config.num_clusters or classes
  reps = comparison.representations(pixels, feats, config.pca_components)
  heads = (scan_clustering.run(config, workdir, backbone, k, labels, mesh, common.preempted)
           if scan_clustering.enabled(config) else ())
  summary, table = comparison.compare(reps, labels, k, config, mesh, heads)
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
                                                  table, picture,
                                                  scan_clustering.describe(config)))


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
