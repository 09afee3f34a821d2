"""K-means (Lloyd's algorithm) as jit-compiled JAX, chunked, shardable and streamable.

Why in JAX: extracted features already live on the accelerator, and one code path
serves a laptop, a sharded mesh (the per-device code is the same; cluster sums are
all-reduced once per iteration) and data that never fits in memory (streaming: one
pass over the batches per Lloyd iteration).

Conventions shared by `kmeans` and `kmeans_streaming`:
- Distances are squared Euclidean, computed as ||c||^2 - 2 x.c (+ ||x||^2) with one
  matmul per chunk of rows, so memory is O(chunk * k), never O(n * k); cluster sums
  are segment sums (scatter-adds), never an (n, k, d) tensor.
- Data are shifted by a fixed vector (the data mean; the init-centroid mean when
  streaming) before anything else, as scikit-learn does, so the float32 expansion
  above does not cancel catastrophically for features far from the origin.
- One iteration = assign every point, then move each centroid to the (weighted) mean
  of its points. It stops after `max_iter` iterations or once the total squared
  centroid shift is <= tol * mean_j Var(x[:, j]) (scikit-learn's definition).
  Labels and inertia are then recomputed for the final centroids.
- Empty clusters: re-seeded, as scikit-learn's lloyd does, with the points farthest
  from their assigned centroid (the i-th empty cluster in index order gets the i-th
  farthest point), each moved point being removed from its old cluster. A cluster
  for which no point is left keeps its previous centroid.
- Points with zero weight (padding, or a zero `sample_weight`) never count.

Modules, lowest first:
- `assignment`: nearest centroid over row chunks (tiles), `assign`, `auto_chunk_size`.
- `lloyd`: one Lloyd iteration (cluster sums, empty-cluster relocation, update) and
  the loop until convergence.
- `seeding`: k-means++ initialisation.
- `in_memory`: `kmeans` on an (n, d) array, optionally sharded over a mesh.
- `streaming`: `kmeans_streaming` over batches, one pass per iteration.
"""

from tlu.unsupervised.kmeans.assignment import HIGHEST, assign, auto_chunk_size
from tlu.unsupervised.kmeans.in_memory import KMeansResult, kmeans
from tlu.unsupervised.kmeans.streaming import kmeans_streaming

__all__ = ['HIGHEST', 'KMeansResult', 'assign', 'auto_chunk_size', 'kmeans',
           'kmeans_streaming']
