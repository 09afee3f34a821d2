"""2-D pictures of feature spaces: t-SNE embeddings and coloured scatter plots.

Why: a scatter of the features coloured by class, by k-means cluster and by domain
shows at a glance what the numbers in the report claim (clusters that match classes,
source and target domains that overlap after adaptation). Figures are drawn with
matplotlib's object API on the Agg canvas, so no global backend or pyplot state is
touched.
"""

import matplotlib
import numpy as np
from matplotlib.figure import Figure


def tsne_2d(features, seed, *, perplexity=30.0, n_iter=500, n_jobs=2):
  """openTSNE embedding of features (n, d) -> (n, 2) float32.

  Settings are for a few thousand points in seconds: PCA initialisation, exact-ish
  neighbours via openTSNE's 'auto' choice, FFT/BH gradients chosen by openTSNE.
  """
  from openTSNE import TSNE  # pylint: disable=import-outside-toplevel  (slow import)
  x = np.asarray(features, np.float32)
  perplexity = float(min(perplexity, max(1.0, (x.shape[0] - 1) / 3.0)))
  tsne = TSNE(n_components=2, perplexity=perplexity, n_iter=n_iter, initialization='pca',
              metric='euclidean', n_jobs=n_jobs, random_state=seed, verbose=False)
  return np.asarray(tsne.fit(x), np.float32)


def _draw(ax, emb, colours, title, legend_title, point_size):
  """One scatter panel: categorical colours get a legend, numeric ones a colour bar."""
  emb = np.asarray(emb)
  colours = np.asarray(colours).reshape(-1)
  categorical = colours.dtype.kind in 'iubUSO' or np.unique(colours).size <= 20
  if categorical:
    values = np.unique(colours)
    cmap = matplotlib.colormaps['tab10' if values.size <= 10 else 'tab20']
    for i, v in enumerate(values):
      sel = colours == v
      ax.scatter(emb[sel, 0], emb[sel, 1], s=point_size, color=cmap(i % cmap.N),
                 label=str(v), linewidths=0)
    if values.size <= 20:
      ax.legend(title=legend_title, fontsize='small', markerscale=3, loc='best',
                frameon=False)
  else:
    points = ax.scatter(emb[:, 0], emb[:, 1], s=point_size, c=colours, cmap='viridis',
                        linewidths=0)
    ax.figure.colorbar(points, ax=ax, label=legend_title)
  ax.set_title(title)
  ax.set_xticks([])
  ax.set_yticks([])


def scatter(path, emb, colours, title, legend_title, *, point_size=4.0):
  """Writes a PNG scatter of emb (n, 2) coloured by colours (n,) to path."""
  fig = Figure(figsize=(6, 5), dpi=120)
  _draw(fig.subplots(), emb, colours, title, legend_title, point_size)
  fig.tight_layout()
  fig.savefig(path, format='png')


def scatter_panels(path, emb, panels, *, title=None, point_size=4.0):
  """Writes side-by-side scatters of the same embedding with different colourings.

  Args:
    path: output PNG path.
    emb: (n, 2) embedding.
    panels: sequence of (panel_title, colours (n,), legend_title), e.g. coloured by
      label, by k-means cluster and by domain.
    title: optional figure title.
  """
  fig = Figure(figsize=(5.5 * len(panels), 5), dpi=120)
  axes = np.atleast_1d(fig.subplots(1, len(panels)))
  for ax, (panel_title, colours, legend_title) in zip(axes, panels):
    _draw(ax, emb, colours, panel_title, legend_title, point_size)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, format='png')
