"""im2col convolution against lax.conv_general_dilated: outputs, gradients, the CNN option."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlu.models import build_model
from tlu.models.matmul_conv import conv_general_dilated

DN = ('NHWC', 'HWIO', 'NHWC')


@pytest.mark.parametrize('shape, kernel, strides, padding', [
    ((3, 8, 8, 4), 3, (1, 1), 'SAME'),
    ((3, 2, 2, 8), 3, (1, 1), 'SAME'),           # the small map XLA:CPU is slow on
    ((2, 9, 7, 3), 3, (2, 2), 'SAME'),
    ((2, 8, 8, 3), 5, (1, 1), 'VALID'),
    ((2, 10, 10, 3), 7, (2, 2), ((3, 3), (3, 3))),   # ResNet's stem, torch's padding
    ((2, 6, 6, 5), 1, (2, 2), 'VALID'),          # a projection shortcut
])
def test_values_and_gradients_equal_lax(shape, kernel, strides, padding):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, shape[-1], 6)), jnp.float32)
  dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, DN)
  ref = lambda x, w: jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=dn,
                                                  precision='highest')
  ours = lambda x, w: conv_general_dilated(x, w, strides, padding, dimension_numbers=dn,
                                           precision='highest')
  np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  probe = jnp.asarray(rng.normal(size=ref(x, w).shape), jnp.float32)
  grads = lambda f: jax.grad(lambda x, w: jnp.sum(f(x, w) * probe), argnums=(0, 1))(x, w)
  for g, r in zip(grads(ours), grads(ref)):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-4)


def test_the_cnn_option_keeps_parameters_and_outputs():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 8, 8, 1)), jnp.float32)
  spec = {'name': 'cnn', 'widths': (8, 16, 32), 'features': 0, 'pool': 'global'}
  xla, mm = build_model(spec), build_model({**spec, 'conv': 'matmul'})
  v = xla.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, mm.init(jax.random.key(0), x))
  np.testing.assert_allclose(mm.apply(v, x)['features'], xla.apply(v, x)['features'],
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='model.conv'):
    build_model({**spec, 'conv': 'fft'}).init(jax.random.key(0), x)


def test_resnet_with_im2col_on_small_maps_keeps_parameters_and_outputs():
  # A narrow ResNet-18 on 16x16 inputs: stages at 16, 8, 4, 2; 'matmul_small' takes the last 3.
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 16, 16, 3)), jnp.float32)
  spec = {'name': 'resnet18', 'width': 8}
  xla, mm = build_model(spec), build_model({**spec, 'conv': 'matmul_small'})
  v = jax.jit(xla.init)(jax.random.key(0), x)
  shapes = jax.eval_shape(mm.init, jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, v) == jax.tree.map(lambda a: a.shape, shapes)
  np.testing.assert_allclose(jax.jit(mm.apply)(v, x)['features'],
                             jax.jit(xla.apply)(v, x)['features'], rtol=1e-5, atol=1e-5)
