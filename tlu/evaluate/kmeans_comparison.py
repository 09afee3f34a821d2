"""k-means of the same rows under several representations, scored against their labels.

SCAN's "pretext + k-means" protocol (Van Gansbeke et al. 2020): the L2-normalised
features of a learned backbone, clustered with k-means++ restarts, against the
baselines a representation must beat, raw pixels and their PCA. Each representation is
scored by an instance of the `kmeans` evaluator (tlu/evaluators/kmeans.py) on fixed
features: Hungarian accuracy, NMI and ARI.
"""

import numpy as np

from tlu import checks, evaluators
from tlu.evaluate.features import l2_normalize
from tlu.report import tables
from tlu.unsupervised import pca as pca_lib

ROWS = {'all': ('train_split', 'eval_split'), 'test': ('eval_split',)}   # the splits clustered
FEATURES = 'contrastive'
RANGES = {'batch_size': checks.POSITIVE_INT, 'n_init': checks.POSITIVE_INT,
          'max_iter': checks.POSITIVE_INT, 'num_clusters': checks.NON_NEGATIVE_INT,
          'pca_components': checks.POSITIVE_INT}   # the cluster stage's own keys


def check(config, pixels):
  """ValueError naming the option out of range; `pixels`: values per image (H*W*C)."""
  checks.check_values(config, RANGES)
  if config.rows not in ROWS:
    raise ValueError(f"rows must be 'all' or 'test', got {config.rows!r}")
  algorithms = _algorithms(config)
  if not algorithms or set(algorithms) - set(ALGORITHMS):
    raise ValueError(f'algorithms={algorithms}: name one or more of {ALGORITHMS}')
  if not 0 < config.pca_components <= pixels:
    raise ValueError(f'pca_components={config.pca_components} must be in 1..{pixels} '
                     '(the number of pixel values)')
  evaluators.check(specs(config, config.num_clusters))


def representations(pixels, features, pca_components):
  """{short name: (long name, (N, d))} of the same N rows: raw pixels (N, P) in [0, 1], their
  PCA to `pca_components` dimensions, and the backbone features (N, F) L2-normalised."""
  reduced = np.asarray(pca_lib.pca_transform(pca_lib.pca_fit(pixels, pca_components), pixels))
  return {'raw': ('raw pixels', pixels), 'pca': (f'PCA-{pca_components} of pixels', reduced),
          FEATURES: ('contrastive features (L2-normalised)', l2_normalize(features))}


FIXED = ('kmeans', 'spectral')   # algorithms of fixed features, on every representation
ALGORITHMS = FIXED + ('scan',)   # scan: a trained clustering head (scan_clustering.py)


def _algorithms(config):
  """config.algorithms (default: k-means alone)."""
  return tuple(config.get('algorithms', ('kmeans',)))


def specs(config, k):
  """One instance per representation and algorithm of `config.algorithms`: k-means writes
  '<short name>/<acc|nmi|ari>', spectral clustering (`config.spectral`: its options)
  '<short name>/spectral_<acc|nmi|ari>'."""
  out = {}
  for name in ('raw', 'pca', FEATURES):
    if 'kmeans' in _algorithms(config):
      out[name] = dict(type='kmeans', num_clusters=k, n_init=config.n_init,
                       max_iter=config.max_iter, seed=config.seed, normalize=False,
                       splits=(name,), prefix=f'{name}/')
    if 'spectral' in _algorithms(config):
      out[f'{name}_spectral'] = dict(dict(config.spectral), type='spectral', num_clusters=k,
                                     seed=config.seed, normalize_features=False,
                                     splits=(name,), prefix=f'{name}/spectral_')
  return out


def compare(reps, labels, k, config, mesh, heads=()):
  """(summary {'<short name>/[spectral_]<metric>': value}, markdown table) of each algorithm
  on every representation of `reps` (`representations`), scored against `labels` (N,);
  `heads`: [(name, title, {'acc', 'nmi', 'ari'})] of trained clustering heads (SCAN), as
  '<FEATURES>/<name>_<metric>' and one row each."""
  ctx = evaluators.Context(model=None, mesh=mesh, num_classes=k, batch_size=0,
                           fixed={name: (x, labels) for name, (_, x) in reps.items()})
  summary = evaluators.Evaluations(specs(config, k), ctx)(None)
  rows = [(long, x.shape[1], algorithm,
           *[summary[f'{name}/{"" if algorithm == "kmeans" else "spectral_"}{m}']
             for m in ('acc', 'nmi', 'ari')])
          for name, (long, x) in reps.items() for algorithm in _algorithms(config)
          if algorithm in FIXED]
  for name, title, scores in heads:
    summary.update({f'{FEATURES}/{name}_{m}': v for m, v in scores.items()})
    rows.append(('source backbone + head, trained', k, title,
                 *[scores[m] for m in ('acc', 'nmi', 'ari')]))
  return summary, tables.key_value_table(rows, ('input', 'dim', 'clustering', 'ACC', 'NMI',
                                                'ARI'))


def report(config, dataset, n, k, backbone, table, picture='', notes=''):
  """report.md of the cluster stage: n rows clustered into k, the table, the picture;
  `notes`: more of the protocol (a sentence per trained algorithm)."""
  options = ', '.join(f'{k}={v}' for k, v in sorted(dict(config.spectral).items()))
  spectral = (f' Spectral clustering: {options} (tlu/evaluators/spectral.py).'
              if 'spectral' in _algorithms(config) else '')
  return (f'# Clustering {dataset}\n\n'
          f'{n} images ({config.rows} splits), k = {k}, k-means++ with {config.n_init} restarts '
          f'(lowest inertia kept).{spectral}{notes} ACC uses Hungarian matching of clusters to classes. Features: '
          f'backbone of `{backbone.run_dir}` (step {backbone.step}).\n\n{table}\n' +
          (f'\n![t-SNE of the features, coloured by class and by k-means cluster]({picture})\n'
           if picture else ''))
