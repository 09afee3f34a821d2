"""k-means of raw pixels, PCA and learned features: `python -m experiments.cluster --config=configs/digits_cluster.py`.

Features: the backbone of `--config.source` (any run directory, at `--config.source_step`),
or of the task `config.pretrain`, trained first in `<workdir>/pretrain`. The protocol
is tlu/evaluate/kmeans_comparison.py; summary.json: `<raw|pca|contrastive>/<acc|nmi|ari>`.
"""

import jax
import numpy as np

from experiments import common
from tlu.evaluate import kmeans_comparison as comparison, run_features
from tlu.evaluate.representation import l2_normalize
from tlu.report import embedding
from tlu.train import mesh as mesh_lib, workdir as workdir_lib


def prepare(config, workdir, check_source=True):
  """Every check before anything is written; returns (feature source, number of classes)."""
  common.check_batch(config.batch_size)
  try:
    shape, classes = run_features.task_shape(config.dataset)
    comparison.check(rows=config.rows, num_clusters=config.num_clusters, n_init=config.n_init,
                     max_iter=config.max_iter, pca_components=config.pca_components,
                     pixels=int(np.prod(shape)))
    common.check_workdir(workdir, config)
    return run_features.FeatureSource(config, workdir, shape, check_source), classes
  except ValueError as e:
    raise common.ConfigError(str(e)) from None


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'cluster')
  source, classes = prepare(config, workdir)
  common.claim_workdir(workdir, config)
  if source.needs_training():
    print(f'pretraining the representation in {source.run_dir}')
  mesh = mesh_lib.make_mesh()
  backbone = source.backbone(mesh, should_stop=common.preempted)
  ds = config.dataset
  splits = (ds.train_split, ds.eval_split) if config.rows == 'all' else (ds.eval_split,)
  pixels, feats, labels = map(np.concatenate, zip(*run_features.pixels_and_features(
      backbone, ds, splits, batch_size=config.batch_size, mesh=mesh)))
  k = config.num_clusters or classes
  result = comparison.compare(comparison.representations(pixels, feats, config.pca_components),
                              labels, k, seed=config.seed, n_init=config.n_init,
                              max_iter=config.max_iter)
  for name, _, acc, nmi, ari in result.rows:
    print(f'{name:>40}: ACC {acc:.4f}  NMI {nmi:.4f}  ARI {ari:.4f}')
  if jax.process_index() != 0:
    return
  workdir_lib.write_json(workdir_lib.path(workdir, 'summary.json'), result.summary)
  picture = ''
  if config.tsne:
    emb = embedding.tsne_2d(l2_normalize(feats), config.seed)
    with workdir_lib.path(workdir, 'tsne.png').open('wb') as f:
      embedding.scatter_panels(f, emb, [('class', labels, 'class'), (
          'k-means cluster', result.assignments[comparison.FEATURES], 'cluster')],
                               title='t-SNE of the contrastive features')
    picture = '\n![t-SNE of the features, coloured by class and by k-means cluster](tsne.png)\n'
  workdir_lib.write_text(workdir_lib.path(workdir, 'report.md'), (
      f'# k-means on {ds.name}\n\n'
      f'{len(labels)} images ({config.rows} splits), k = {k}, k-means++ with {config.n_init} '
      f'restarts (lowest inertia kept). ACC uses Hungarian matching of clusters to classes. '
      f'Features: backbone of `{backbone.run_dir}` (step {backbone.step}).\n\n'
      f'{result.table()}\n{picture}'))
  print(f'report: {workdir_lib.path(workdir, "report.md")}')


if __name__ == '__main__':
  common.launch(main, 'configs/digits_cluster.py')
