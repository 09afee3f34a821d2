"""Speed of tlu's jit train step for one method, model and batch; optionally beside PyTorch.

  python -m benchmarks.train_step [--method simclr] [--model resnet18] [--batch 128]
      [--image_size 32] [--steps 10] [--windows 3] [--dtype float32|bfloat16]
      [--augment none|<preset>] [--peer torch] [--peak_tflops 989] [--set key=value ...]

The step is the one every run trains with: a task config like tests/methods_check.py's
goes through `tlu.train.task.Trainer.build` (the method's heads, the optimizer, the
train state with the method's state), on a mesh over every device present, the batch
sharded on `data`. Data are synthetic uint8 images (one batch from the method's own
iterator, reused: loading is not timed, see benchmarks/loader.py); no augmentation by
default (an identity pipeline, since view methods need one: their views are equal).

Compile time (trace + lower + XLA compile) is reported apart. After one warm-up step,
`--windows` windows of `--steps` steps are timed, alternating with the peer's windows so
that a change of the machine's load hits both. Step time is the median over windows of
(window time / steps); images/s = batch / step time, where batch counts source images,
not views (`b=2x128`: 128 images forwarded as 2 views; `b=128+128`: a domain adaptation
method's source and target batches). Where XLA's cost analysis gives FLOPs, the line adds
FLOP per step, achieved FLOP/s, and MFU (achieved / (devices x --peak_tflops)) when the
peak of one device is given.

--peer torch: the same model and loss in plain PyTorch on the same machine (ResNet-18/34
with the same stem, projector and NT-Xent for simclr, linear head and cross-entropy for
supervised; other methods and augmentations have no peer), SGD with Nesterov momentum
as tlu's, torch.set_num_threads = the cores jax's CPU client uses (this process's CPU
affinity), timed the same way; ratio = tlu images/s / torch images/s. Needs torch
(`pip install torch`: the CPU wheel of the local wheel folder).
"""

import argparse
import ast
import os
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tlu import methods
from tlu.train import mesh as mesh_lib, task

IDENTITY_AUGMENT = {'flip_prob': 0.0}   # an augmentation that applies nothing
PEER_METHODS = ('simclr', 'supervised')
PEER_MODELS = {'resnet18': (2, 2, 2, 2), 'resnet34': (3, 4, 6, 3)}


class Source:
  """n random uint8 images (H, W, C) with labels in [0, num_classes): a random-access source."""

  def __init__(self, n, shape, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    self.images = rng.integers(0, 256, (n,) + tuple(shape), dtype=np.uint8)
    self.labels = rng.integers(0, num_classes, n)

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {'image': self.images[i], 'label': self.labels[i]}


def config(args):
  """The task config of the benchmark: the method's example config, sizes of a real run."""
  method = dict(name=args.method, **methods.get(args.method).example_config())
  if args.method == 'simclr':
    method['projector'] = (512, 128)
  model = dict(name=args.model, dtype=args.dtype)
  if args.model.startswith('vit'):
    model['image_size'] = args.image_size
  cfg = ml_collections.ConfigDict(dict(
      method=method, model=model, seed=0,
      optimizer=dict(name='sgd', lr=0.1, momentum=0.9, weight_decay=1e-4, schedule='cosine',
                     warmup_steps=0),
      steps=1000, batch_size=args.batch, eval_batch_size=args.batch,
      augment=IDENTITY_AUGMENT if args.augment == 'none' else args.augment, freeze=(),
      evals={}, log_every=1, eval_every=0, checkpoint_every=0, progress=False))
  for item in args.set:   # --set method.temperature=0.2
    key, value = item.split('=', 1)
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass
    *parents, leaf = key.split('.')
    node = cfg
    for p in parents:
      node = node[p]
    with node.unlocked():
      node[leaf] = value
  return cfg


def splits(args, num_classes=10):
  shape = (args.image_size, args.image_size, 3)
  n = max(args.batch, 256)
  return task.Splits(train=Source(n, shape, num_classes), target=Source(n, shape, num_classes, 1),
                     test=Source(n, shape, num_classes, 2), num_classes=num_classes,
                     image_shape=shape)


def timed_window(run_step, steps, sync):
  """Seconds per step over one window of `steps` calls, then `sync()`."""
  t = time.perf_counter()
  for _ in range(steps):
    run_step()
  sync()
  return (time.perf_counter() - t) / steps


def interleaved(runners, steps, windows):
  """{name: per-step seconds of each window}; the runners' windows alternate, so a change of
  the machine's load during the run falls on all of them alike."""
  out = {name: [] for name in runners}
  for _ in range(windows):
    for name, (run_step, sync) in runners.items():
      out[name].append(timed_window(run_step, steps, sync))
  return out


def flops_of(compiled):
  """FLOPs of one execution on one device from XLA's cost analysis, or None."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get('flops')
  return float(flops) if flops and flops > 0 else None


def bench_tlu(args):
  """(run_step, sync), {'compile_s', 'views', 'flops', 'devices'} of tlu's jit train step,
  compiled and run once."""
  mesh = mesh_lib.make_mesh()
  if args.batch % mesh.size:
    raise SystemExit(f'--batch {args.batch} is not divisible by the {mesh.size} devices')
  cfg, data = config(args), splits(args)
  trainer = task.Trainer(mesh)
  method, _, _, _, train_step = trainer.build(cfg, data)
  views = []
  parent_views = method.views

  def counted_views(*a, **kw):   # how many views the loss forwards (the `2x` of b=2x128)
    out = parent_views(*a, **kw)
    views.append(len(out))
    return out

  method.views = counted_views
  # A private copy of every leaf, as tlu.train.session does: the step donates its input,
  # and a method state may alias the parameters (BYOL's target starts as them).
  state = jax.device_put(jax.tree.map(jnp.copy, trainer.init_state(cfg, data)),
                         mesh_lib.replicated(mesh))
  batch = mesh_lib.to_global(next(method.batches(data, seed=0)), mesh)
  t = time.perf_counter()
  compiled = train_step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t
  box = [state]

  def run_step():
    box[0], _ = compiled(box[0], batch)

  sync = lambda: jax.block_until_ready(box[0])
  run_step()
  sync()
  return (run_step, sync), dict(compile_s=compile_s, views=views[0] if views else 1,
                                flops=flops_of(compiled), devices=mesh.size,
                                paired=method.inputs == 'paired')


# ------------------------------------------------------------------------- the PyTorch peer


def torch_model(torch, depth, stem, projector, num_classes):
  """torchvision-style ResNet (BasicBlocks) + projector MLP or linear head, plain torch."""
  nn = torch.nn

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(cout)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout)
      nn.init.zeros_(self.bn2.weight)   # as tlu: last BN of a block starts at 0
      self.proj = None
      if stride != 1 or cin != cout:
        self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                  nn.BatchNorm2d(cout))

    def forward(self, x):
      y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
      return torch.relu(y + (x if self.proj is None else self.proj(x)))

  if stem == 'cifar':
    layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
  else:
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
  cin = 64
  for s, n in enumerate(PEER_MODELS[depth]):
    for b in range(n):
      cout = 64 * 2**s
      layers.append(Block(cin, cout, 2 if s > 0 and b == 0 else 1))
      cin = cout
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
  if projector:
    dims = [cin, *projector]
    for i in range(len(projector)):
      layers.append(nn.Linear(dims[i], dims[i + 1]))
      if i < len(projector) - 1:
        layers.append(nn.ReLU())
  else:
    layers.append(nn.Linear(cin, num_classes))
  return nn.Sequential(*layers)


def bench_torch(args, cfg, views, threads):
  """(run_step, sync) of the same step in PyTorch, run once; or a string saying why not."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return 'torch n/a (not installed)'
  if args.method not in PEER_METHODS or args.model not in PEER_MODELS:
    return f'torch n/a (peer for {"/".join(PEER_METHODS)} on {"/".join(PEER_MODELS)} only)'
  if args.augment != 'none':
    return 'torch n/a (no augmentation in the peer)'
  device = 'cuda' if jax.default_backend() == 'gpu' and torch.cuda.is_available() else 'cpu'
  if jax.default_backend() != 'cpu' and device == 'cpu':
    return f'torch n/a (no torch device for {jax.default_backend()})'
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  simclr = args.method == 'simclr'
  stem = cfg.model.get('stem', 'cifar')
  model = torch_model(torch, args.model, stem, tuple(cfg.method.projector) if simclr else (),
                      10).to(device)
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=1e-4)
  rng = np.random.default_rng(0)
  images = torch.from_numpy(rng.integers(0, 256, (args.batch, args.image_size, args.image_size, 3),
                                         dtype=np.uint8)).to(device)
  labels = torch.from_numpy(rng.integers(0, 10, args.batch)).to(device)
  temperature = float(cfg.method.get('temperature', 0.5))
  autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.dtype == 'bfloat16')

  def loss_fn():
    x = ((images.float() / 255.0 - 0.5) / 0.25).permute(0, 3, 1, 2)
    if not simclr:
      return torch.nn.functional.cross_entropy(model(x).float(), labels)
    z = model(torch.cat([x] * views)).float()   # both views in one pass, as tlu
    z = torch.nn.functional.normalize(z, dim=1)
    logits = (z @ z.T) / temperature
    n2 = z.shape[0]
    logits = logits.masked_fill(torch.eye(n2, dtype=torch.bool, device=device), float('-inf'))
    positive = (torch.arange(n2, device=device) + n2 // 2) % n2
    return torch.nn.functional.cross_entropy(logits, positive)

  def run_step():
    with autocast:
      loss = loss_fn()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()

  sync = (lambda: torch.cuda.synchronize()) if device == 'cuda' else (lambda: None)
  run_step()
  sync()
  return run_step, sync


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--method', default='simclr', choices=methods.names())
  parser.add_argument('--model', default='resnet18')
  parser.add_argument('--batch', type=int, default=128, help='global batch of source images')
  parser.add_argument('--image_size', type=int, default=32)
  parser.add_argument('--steps', type=int, default=10, help='steps per timed window')
  parser.add_argument('--windows', type=int, default=3, help='timed windows (median)')
  parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  parser.add_argument('--augment', default='none', help="'none' or an augmentation preset")
  parser.add_argument('--peer', default='', choices=('', 'torch'))
  parser.add_argument('--peak_tflops', type=float, default=0.0,
                      help='peak TFLOP/s of one device (for MFU)')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='override a task config value, e.g. method.temperature=0.2')
  args = parser.parse_args()
  if args.windows < 3:
    parser.error('--windows must be >= 3 (the step time is a median over windows)')
  threads = len(os.sched_getaffinity(0))
  platform = jax.default_backend()
  runners = {}
  runners['tlu'], tlu = bench_tlu(args)
  views = tlu['views']
  peer = bench_torch(args, config(args), views, threads) if args.peer == 'torch' else None
  if peer is not None and not isinstance(peer, str):
    runners['torch'] = peer
  windows = interleaved(runners, args.steps, args.windows)
  step = {name: statistics.median(w) for name, w in windows.items()}
  b = f'{views}x{args.batch}' if views > 1 else f'{args.batch}'
  if tlu['paired']:   # domain adaptation: a batch of source and one of target images
    b += f'+{args.batch}'
  head = (f'train_step {args.method} {args.model} b={b} {args.image_size}x{args.image_size} '
          f'{args.dtype}')
  line = (f'{head}: tlu {args.batch / step["tlu"]:.1f} img/s (step {step["tlu"]:.3g} s, '
          f'compile {tlu["compile_s"]:.3g} s)')
  if isinstance(peer, str):
    line += f', {peer}'
  elif 'torch' in step:
    line += (f', torch {args.batch / step["torch"]:.1f} img/s (step {step["torch"]:.3g} s), '
             f'ratio {step["torch"] / step["tlu"]:.2f}')
  extras = [f'{tlu["devices"]} {platform} device(s)']
  if platform == 'cpu':
    extras.append(f'{threads} cores, torch threads {threads}' if args.peer else
                  f'{threads} cores')
    extras.append(f'load {os.getloadavg()[0]:.1f}')
  if tlu['flops']:
    achieved = tlu['flops'] * tlu['devices'] / step['tlu']
    extras.append(f'{tlu["flops"] * tlu["devices"] / 1e9:.3g} GFLOP/step, '
                  f'{achieved / 1e12:.3g} TFLOP/s')
    if args.peak_tflops:
      extras.append(f'MFU {achieved / (args.peak_tflops * 1e12 * tlu["devices"]):.1%}')
  for name, w in windows.items():
    extras.append(f'{name} windows ' + '/'.join(f'{s:.3g}' for s in w) + ' s/step')
  print(line + ' | ' + ', '.join(extras), flush=True)


if __name__ == '__main__':
  main()
