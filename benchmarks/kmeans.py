"""K-means speed: tlu vs scikit-learn vs faiss on the same data, init and iterations.

All three run plain Lloyd from the same initial centroids C0 for the same fixed number
of iterations M (scikit-learn: tol=0, faiss: niter=M, no subsampling), so their times
are comparable and their final inertias should agree. Inertias are all recomputed by
one evaluator (numpy, on the final centroids). The libraries run interleaved (tlu,
sklearn, faiss, tlu, ...) so load from other processes hits all alike; each time is
a median over `--repeats` runs. tlu's compile time is excluded from its median and
reported separately. One line per size, with speed-ups (peer time / tlu time):

  python -m benchmarks.kmeans [--sizes small|large|all] [--iters 20] [--repeats 3]
  python -m benchmarks.kmeans --streaming   # 1M and 10M x 128, never all in memory
  python -m benchmarks.kmeans --threads 1  # the same thread budget for every library
"""

import argparse
import os
import resource
import statistics
import time
import warnings

import jax
import numpy as np
from jax._src import xla_bridge  # backends_are_initialized: no public API

from tlu.unsupervised import kmeans as kmeans_lib

SIZES = {'small': [(100_000, 64, 100)],
         'all': [(100_000, 64, 100), (1_000_000, 128, 1000)],
         'large': [(1_000_000, 128, 1000)]}


def blobs(n, d, k, seed=0):
  """(n, d) float32 gaussian blobs around k centres, overlapping enough that Lloyd does
  not converge in a few iterations; and (k, d) initial centroids (k random points)."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(k, d)).astype(np.float32) * 2.0
  x = np.empty((n, d), np.float32)
  step = 1 << 18
  for i in range(0, n, step):
    m = min(step, n - i)
    x[i:i + m] = centres[rng.integers(0, k, m)] + rng.normal(size=(m, d)).astype(np.float32)
  c0 = x[rng.choice(n, k, replace=False)].copy()
  return x, c0


def inertia_of(x, centroids, chunk=8192):
  """Sum of squared distances to the nearest centroid, computed independently in numpy
  (BLAS matmul for the argmin, exact float64 distances to the chosen centroid)."""
  c = np.asarray(centroids, np.float32)
  c_sq = (c.astype(np.float64) ** 2).sum(1).astype(np.float32)
  total = 0.0
  for i in range(0, x.shape[0], chunk):
    xc = x[i:i + chunk]
    labels = np.argmin(c_sq[None, :] - 2.0 * (xc @ c.T), axis=1)
    total += float(((xc.astype(np.float64) - c[labels]) ** 2).sum())
  return total


def pin_threads(n):
  """Gives every library the same budget of n threads; call before JAX's first use.

  threadpoolctl caps scikit-learn's OpenMP and BLAS, faiss gets omp_set_num_threads.
  XLA: n = 1 switches its Eigen pool off by flags; 1 < n < all CPUs binds the process
  to n CPUs (XLA sizes its pool from the affinity mask). n = 1 does not bind, so the
  one busy thread can still move away from other jobs' cores.
  """
  if xla_bridge.backends_are_initialized():
    raise RuntimeError('pin_threads must run before JAX creates its CPU client.')
  cpus = sorted(os.sched_getaffinity(0))
  if n > len(cpus):
    raise ValueError(f'--threads {n}, but only {len(cpus)} CPUs are available.')
  if 1 < n < len(cpus):
    os.sched_setaffinity(0, cpus[:n])
  if n == 1:
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_multi_thread_eigen'
                               '=false intra_op_parallelism_threads=1').strip()
  try:
    import faiss  # pylint: disable=import-outside-toplevel
    faiss.omp_set_num_threads(n)
  except ImportError:
    pass
  from threadpoolctl import threadpool_limits  # pylint: disable=import-outside-toplevel
  threadpool_limits(n)


def timed(fns, repeats):
  """Calls the functions of `fns` ({name: fn}) in turn, `repeats` rounds; returns
  {name: (median seconds, last result)}, or (None, None) where a call raised
  ImportError (the library is absent)."""
  times = {name: [] for name in fns}
  outs = {name: None for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      if times[name] is None:
        continue
      t = time.perf_counter()
      try:
        outs[name] = fn()
      except ImportError:
        times[name] = None
        continue
      times[name].append(time.perf_counter() - t)
  return {name: (statistics.median(t) if t else None, outs[name])
          for name, t in times.items()}


def run_tlu(x_dev, c0, iters, lanes=1):
  res = kmeans_lib.kmeans(jax.random.key(0), x_dev, c0.shape[0], init=c0, max_iter=iters,
                          tol=0.0, lanes=lanes)
  jax.block_until_ready(res)
  return np.asarray(res.centroids), int(res.n_iter)


def run_sklearn(x, c0, iters):
  from sklearn.cluster import KMeans  # pylint: disable=import-outside-toplevel
  km = KMeans(n_clusters=c0.shape[0], init=c0, n_init=1, max_iter=iters, tol=0,
              algorithm='lloyd').fit(x)
  return km.cluster_centers_, int(km.n_iter_)


def run_faiss(x, c0, iters):
  import faiss  # pylint: disable=import-outside-toplevel
  km = faiss.Kmeans(x.shape[1], c0.shape[0], niter=iters, verbose=False,
                    max_points_per_centroid=x.shape[0], min_points_per_centroid=1)
  km.train(x, init_centroids=c0)
  return km.centroids, iters


def bench_size(n, d, k, iters, repeats, lanes):
  x, c0 = blobs(n, d, k)
  x_dev = jax.device_put(x)
  # max_iter is traced, so a 0-iteration call compiles the same program and runs
  # only the final assignment pass: compile time = that call minus one pass.
  warm = timed({'tlu': lambda: run_tlu(x_dev, c0, 0, lanes)}, 1)['tlu'][0]
  res = timed({'tlu': lambda: run_tlu(x_dev, c0, iters, lanes),
               'sklearn': lambda: run_sklearn(x, c0, iters),
               'faiss': lambda: run_faiss(x, c0, iters)}, repeats)
  t_tlu, (c_tlu, it_tlu) = res['tlu']
  compile_s = max(warm - t_tlu / (it_tlu + 1), 0.0)
  parts = [f'tlu {t_tlu:.3f}s (compile {compile_s:.2f}s, {it_tlu} it)']
  inertia_tlu = inertia_of(x, c_tlu)
  ratios, inertias = [], [f'tlu {inertia_tlu:.7g}']
  for name in ('sklearn', 'faiss'):
    t, out = res[name]
    if t is None:
      parts.append(f'{name} n/a')
      continue
    inertia = inertia_of(x, out[0])
    parts.append(f'{name} {t:.3f}s ({out[1]} it)')
    ratios.append(f'speed-up vs {name} {t / t_tlu:.2f}x')
    inertias.append(f'{name} {inertia:.7g} ({(inertia_tlu / inertia - 1) * 100:+.3f}%)')
  print(f'kmeans N={n} D={d} K={k} iters={iters} repeats={repeats} | ' + ' '.join(parts)
        + ' | ' + ' '.join(ratios) + ' | inertia ' + ' '.join(inertias), flush=True)


def bench_streaming(sizes, iters, batch=100_000, d=128, k=100):
  """Streams generated points (regenerated batch by batch on every pass, never all in
  memory); prints time and the process's peak RSS after each size."""
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(k, d)).astype(np.float32) * 2.0
  c0 = centres + rng.normal(size=(k, d)).astype(np.float32)

  def make_batches(n):
    def batches():
      for i in range(0, n, batch):
        r = np.random.default_rng(i)
        m = min(batch, n - i)
        noise = r.standard_normal((m, d), dtype=np.float32)
        yield centres[r.integers(0, k, m)] + noise
    return batches

  for n in sizes:
    t = time.perf_counter()
    res = kmeans_lib.kmeans_streaming(make_batches(n), k, c0, max_iter=iters, tol=0.0)
    jax.block_until_ready(res)
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f'kmeans_streaming N={n} D={d} K={k} batch={batch} iters={int(res.n_iter)} | '
          f'{time.perf_counter() - t:.1f}s incl. data generation | '
          f'inertia/N {float(res.inertia) / n:.4f} | peak RSS {rss_gib:.2f} GiB '
          f'(the data would take {n * d * 4 / 2**30:.2f} GiB)', flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', choices=sorted(SIZES), default='small')
  parser.add_argument('--iters', type=int, default=20, help='Lloyd iterations')
  parser.add_argument('--repeats', type=int, default=3,
                      help='interleaved timed runs per library (median)')
  parser.add_argument('--threads', type=int, default=None,
                      help='threads for every library: XLA, scikit-learn, faiss '
                      '(default: all CPUs, each library its own default)')
  parser.add_argument('--lanes', type=int, default=1,
                      help="tlu's concurrent tiles (see kmeans(lanes=...))")
  parser.add_argument('--streaming', action='store_true',
                      help='run the streaming demonstration instead')
  parser.add_argument('--stream-sizes', default='1000000,10000000')
  parser.add_argument('--stream-iters', type=int, default=3)
  args = parser.parse_args()
  warnings.simplefilter('ignore')  # scikit-learn's ConvergenceWarning on duplicates
  if args.threads:
    pin_threads(args.threads)
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, threads '
        f'{args.threads or "default"} (CPUs {sorted(os.sched_getaffinity(0))}, XLA_FLAGS='
        f'{os.environ.get("XLA_FLAGS", "")!r}), tlu lanes {args.lanes}', flush=True)
  if args.streaming:
    bench_streaming([int(s) for s in args.stream_sizes.split(',')], args.stream_iters)
    return
  for n, d, k in SIZES[args.sizes]:
    bench_size(n, d, k, args.iters, args.repeats, args.lanes)


if __name__ == '__main__':
  main()
