"""k-means of raw pixels, PCA and learned features: `python -m experiments.cluster --config=configs/digits_cluster.py`."""

import os

import jax
import numpy as np

from experiments import common
from tlu.data import sources, subsets
from tlu.evaluate import clustering
from tlu.evaluate.representation import l2_normalize
from tlu.evaluate.run_features import features_of_run
from tlu.report import embedding, tables
from tlu.train import mesh as mesh_lib
from tlu.transfer.pretrained import PretrainedError, source_config
from tlu.unsupervised import kmeans as kmeans_lib, pca as pca_lib


def representation_source(config, workdir, subdir='pretrain'):
  """The workdir whose backbone gives the features: config.features, or a pretraining run.

  Validates without compute; returns (dir, needs_pretraining).
  """
  if config.features:
    try:
      source_config(config.features)
    except PretrainedError as e:
      raise common.ConfigError(str(e)) from None
    return config.features, False
  from experiments import pretrain  # pylint: disable=import-outside-toplevel
  path = os.path.join(workdir, subdir)
  pretrain.validate(config.pretrain, path)
  return path, not os.path.exists(os.path.join(path, 'summary.json'))


def claim_with_representation(config, workdir):
  """Checks the workdir and the representation's run, claims the workdir, pretrains if needed.

  Returns the run directory whose backbone gives the features.
  """
  common.check_workdir(workdir, config)
  feature_dir, needs_pretraining = representation_source(config, workdir)
  common.claim_workdir(workdir, config)
  if needs_pretraining:
    from experiments import pretrain  # pylint: disable=import-outside-toplevel
    print(f'pretraining the representation in {feature_dir}')
    pretrain.pretrain(config.pretrain, feature_dir)
  return feature_dir


def check(config):
  """The cluster config's own checks (no compute, no other run needed)."""
  if config.rows not in ('all', 'test'):
    raise common.ConfigError(f"rows must be 'all' or 'test', got {config.rows!r}")
  common.check_batch(config.batch_size)
  ds = config.dataset
  info = sources.dataset_info(ds.name, [ds.train_split, ds.eval_split], ds.data_dir)
  pixels = int(np.prod(subsets.input_shape(ds, info)))
  if not 0 < config.pca_components <= pixels:
    raise common.ConfigError(f'pca_components={config.pca_components} must be in 1..{pixels} '
                             '(the number of pixel values)')
  return info


def split_arrays(config, mesh, feature_dir):
  """{'pixels', 'features'} of the clustered rows, and their labels."""
  ds = config.dataset
  splits = (ds.train_split, ds.eval_split) if config.rows == 'all' else (ds.eval_split,)
  pixels, feats, labels = [], [], []
  for split in splits:
    images, y_pix = task_arrays(ds, split)
    pixels.append(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    f, y = features_of_run(feature_dir, ds, split,
                           batch_size=config.batch_size, mesh=mesh, step=config.features_step)
    np.testing.assert_array_equal(y, y_pix)  # same rows, same order
    feats.append(f)
    labels.append(y)
  return np.concatenate(pixels), np.concatenate(feats), np.concatenate(labels)


def task_arrays(ds, split):
  """(images (N, H, W, C) uint8, labels (N,)) of a dataset config's split, as the model sees them."""
  source = subsets.task_source(ds, split)
  examples = [source[i] for i in range(len(source))]
  return np.stack([e['image'] for e in examples]), np.asarray([e['label'] for e in examples])


def cluster(config, x, k):
  result = kmeans_lib.kmeans(jax.random.key(config.seed), x, k, n_init=config.n_init,
                             max_iter=config.max_iter)
  return np.asarray(result.labels), float(result.inertia)


def main(config, workdir):
  workdir = common.resolve_workdir(workdir, 'cluster')
  info = check(config)
  ds = config.dataset
  feature_dir = claim_with_representation(config, workdir)
  mesh = mesh_lib.make_mesh()
  pixels, feats, labels = split_arrays(config, mesh, feature_dir)
  k = config.num_clusters or info.num_classes
  reduced = np.asarray(pca_lib.pca_transform(pca_lib.pca_fit(pixels, config.pca_components),
                                             pixels))
  inputs = {'raw pixels': pixels, f'PCA-{config.pca_components} of pixels': reduced,
            'contrastive features (L2-normalised)': l2_normalize(feats)}
  rows, summary, assignments = [], {}, {}
  for name, x in inputs.items():
    pred, inertia = cluster(config, x, k)
    m = clustering.clustering_metrics(labels, pred)
    rows.append((name, x.shape[1], m['acc'], m['nmi'], m['ari']))
    key = name.split(' ')[0].lower().rstrip('-0123456789')
    summary.update({f'{key}/{metric}': float(v) for metric, v in m.items()})
    assignments[name] = pred
    print(f'{name:>40}: ACC {m["acc"]:.4f}  NMI {m["nmi"]:.4f}  ARI {m["ari"]:.4f}')
  if jax.process_index() != 0:
    return
  common.write_json(os.path.join(workdir, 'summary.json'), summary)
  picture = ''
  if config.tsne:
    emb = embedding.tsne_2d(l2_normalize(feats), config.seed)
    embedding.scatter_panels(os.path.join(workdir, 'tsne.png'), emb, [
        ('class', labels, 'class'),
        ('k-means cluster', assignments['contrastive features (L2-normalised)'], 'cluster')],
                             title='t-SNE of the contrastive features')
    picture = '\n![t-SNE of the features, coloured by class and by k-means cluster](tsne.png)\n'
  table = tables.key_value_table(rows, ('input', 'dim', 'ACC', 'NMI', 'ARI'))
  common.write_text(os.path.join(workdir, 'report.md'), (
      f'# k-means on {ds.name}\n\n'
      f'{len(labels)} images ({config.rows} splits), k = {k}, k-means++ with {config.n_init} '
      f'restarts (lowest inertia kept). ACC uses Hungarian matching of clusters to classes. '
      f'Features: backbone of `{feature_dir}`.\n\n{table}\n{picture}'))
  print(f'report: {os.path.join(workdir, "report.md")}')


if __name__ == '__main__':
  common.launch(main, 'configs/digits_cluster.py')
