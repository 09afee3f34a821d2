"""XLA's convolution against tlu's im2col matmul (`tlu.models.matmul_conv`), layer by layer.

  python -m benchmarks.conv [--batch 512] [--repeats 5]

For each layer shape (the digits CNN's three 3x3 convs and ResNet-18 CIFAR's four stages),
the jit-compiled forward + backward (gradients of sum(y * probe) w.r.t. input and kernel)
of `lax.conv_general_dilated` and of `matmul_conv.conv_general_dilated`, timed in
alternation (`--repeats` rounds, median), on whatever device JAX picks. One line per
shape: both times and the speed-up xla / matmul, and the largest relative difference of
the outputs (float32 round-off).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from tlu.models import matmul_conv

LAYERS = (  # (name, H = W, C in, C out)
    ('digits conv0 8x8', 8, 1, 64), ('digits conv1 4x4', 4, 64, 128),
    ('digits conv2 2x2', 2, 128, 256),
    ('resnet18 stage1 32x32', 32, 64, 64), ('resnet18 stage2 16x16', 16, 128, 128),
    ('resnet18 stage3 8x8', 8, 256, 256), ('resnet18 stage4 4x4', 4, 512, 512))


def step(conv, dn):
  def loss(x, w, probe):
    return jnp.sum(conv(x, w, (1, 1), 'SAME', dimension_numbers=dn) * probe)
  return jax.jit(jax.grad(loss, argnums=(0, 1)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch', type=int, default=512)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  print(f'devices: {jax.devices()}; batch {args.batch}; forward + backward, median of '
        f'{args.repeats}')
  for name, hw, cin, cout in LAYERS:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(args.batch, hw, hw, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, cin, cout)) / np.sqrt(9 * cin), jnp.float32)
    probe = jnp.asarray(rng.normal(size=(args.batch, hw, hw, cout)), jnp.float32)
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ('NHWC', 'HWIO', 'NHWC'))
    fns = {'xla': step(jax.lax.conv_general_dilated, dn),
           'matmul': step(matmul_conv.conv_general_dilated, dn)}
    times = {k: [] for k in fns}
    for f in fns.values():
      jax.block_until_ready(f(x, w, probe))
    for _ in range(args.repeats):
      for k, f in fns.items():
        t = time.perf_counter()
        jax.block_until_ready(f(x, w, probe))
        times[k].append(time.perf_counter() - t)
    ref = jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=dn)
    ours = matmul_conv.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=dn)
    err = float(jnp.max(jnp.abs(ours - ref)) / jnp.max(jnp.abs(ref)))
    tx, tm = (statistics.median(times[k]) for k in ('xla', 'matmul'))
    print(f'{name:24s} {cin:4d}->{cout:4d}: xla {tx * 1e3:8.1f} ms  matmul {tm * 1e3:8.1f} ms  '
          f'speed-up {tx / tm:5.2f}x  max rel. diff {err:.1e}', flush=True)


if __name__ == '__main__':
  main()
