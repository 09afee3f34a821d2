"""Full-size parity with PyTorch (the `interop` extra: `pip install -e .[interop]`).

Random weights in torchvision's ResNet-18 / ResNet-50 layout and timm's ViT-S/16 layout
(plain-torch copies of those models, tests/torch_reference.py), saved as their libraries
save them, converted by tlu: eval-mode logits agree to 1e-4 in float32.
"""

import os

import numpy as np
import pytest

torch = pytest.importorskip('torch')

import jax.numpy as jnp  # noqa: E402

import torch_reference as tr  # noqa: E402
from tlu.convert import convert, files  # noqa: E402
from tlu.models import build_model, heads  # noqa: E402
from tlu.models.norm import BatchNorm  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')


def tlu_logits(converted, images):
  model = build_model(converted.model, {'head': heads.classifier(converted.num_classes)})
  return np.asarray(model.apply(converted.variables, jnp.asarray(images), heads=('head',))['head'])


def torch_logits(model, images, mean, std, dtype=torch.float32):
  x = ((images - np.asarray(mean)) / np.asarray(std)).astype(np.float32).transpose(0, 3, 1, 2)
  with torch.no_grad():
    return model.to(dtype)(torch.from_numpy(x).to(dtype)).double().numpy()


def safetensors_torch():
  return pytest.importorskip('safetensors.torch')


def save(model, path):
  state = {k: v.contiguous() for k, v in model.state_dict().items()}
  if str(path).endswith('.safetensors'):
    safetensors_torch().save_file(state, str(path))
  else:
    torch.save(state, str(path))


@pytest.mark.parametrize('depth,ext', [(18, '.pth'), (50, '.safetensors')])
def test_torchvision_resnet(tmp_path, depth, ext):
  model = tr.randomize(tr.ResNet(depth), seed=depth)
  save(model, tmp_path / f'resnet{depth}{ext}')
  converted = convert('torchvision', str(tmp_path / f'resnet{depth}{ext}'), f'resnet{depth}')
  images = np.random.default_rng(0).random((2, 224, 224, 3)).astype(np.float32)
  mean, std = converted.model['input_mean'], converted.model['input_std']
  got = tlu_logits(converted, images)
  np.testing.assert_allclose(got, torch_logits(model, images, mean, std), atol=1e-4, rtol=0)
  exact = torch_logits(model, images, mean, std, torch.float64)   # tlu is as close as torch is
  assert np.abs(got - exact).max() < 1e-4


def test_timm_vit_s16(tmp_path):
  model = tr.randomize(tr.VisionTransformer(), seed=16)
  save(model, tmp_path / 'model.safetensors')
  converted = convert('timm', str(tmp_path / 'model.safetensors'), 'vit_s16')
  assert converted.model['image_size'] == 224 and not converted.model['approximate_gelu']
  images = np.random.default_rng(1).random((2, 224, 224, 3)).astype(np.float32)
  np.testing.assert_allclose(tlu_logits(converted, images),
                             torch_logits(model, images, 0.5, 0.5), atol=1e-4, rtol=0)


def test_big_vision_vit_b32_npz(tmp_path):
  model = tr.tanh_gelu(tr.randomize(tr.VisionTransformer(
      patch=32, dim=768, depth=12, num_heads=12, mlp_dim=3072), seed=32))
  np.savez(tmp_path / 'vit.npz', **tr.to_vision_transformer_npz(model))
  converted = convert('big_vision', str(tmp_path / 'vit.npz'), 'vit_b32')
  images = np.random.default_rng(2).random((2, 224, 224, 3)).astype(np.float32)
  np.testing.assert_allclose(tlu_logits(converted, images),
                             torch_logits(model, images, 0.5, 0.5), atol=1e-4, rtol=0)


@pytest.mark.parametrize('name', ['resnet18_w2.pth', 'resnet50_w2_legacy.pth',
                                  'vit_tiny_timm.safetensors'])
def test_tlu_reads_the_fixtures_as_torch_does(name):
  path = os.path.join(FIXTURES, name)
  if name.endswith('.safetensors'):
    want = safetensors_torch().load_file(path)
  else:
    want = torch.load(path, weights_only=True)
  got = files.read(path)
  assert got.keys() == want.keys()
  for k, v in want.items():
    np.testing.assert_array_equal(got[k], v.numpy())


def test_batchnorm_momentum_semantics():
  """tlu's BatchNorm(momentum=0.9) moves its running mean as torch's BatchNorm2d(momentum=0.1)
  does; the running variance differs only by torch's unbiased n / (n - 1) factor."""
  x = np.random.default_rng(3).normal(2.0, 3.0, (4, 5, 5, 6)).astype(np.float32)
  bn_t = torch.nn.BatchNorm2d(6, eps=1e-5, momentum=0.1).train()
  with torch.no_grad():
    y_t = bn_t(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
  bn = BatchNorm(momentum=0.9, epsilon=1e-5)
  variables = bn.init(__import__('jax').random.key(0), jnp.asarray(x), False)
  y, updates = bn.apply(variables, jnp.asarray(x), True, mutable=['batch_stats'])
  np.testing.assert_allclose(y, y_t, atol=1e-5)
  stats = updates['batch_stats']
  np.testing.assert_allclose(stats['mean'], bn_t.running_mean.numpy(), atol=1e-6)
  n = x.size // 6
  biased = 0.9 + 0.1 * x.reshape(-1, 6).var(axis=0)
  np.testing.assert_allclose(stats['var'], biased, rtol=1e-5)
  np.testing.assert_allclose(bn_t.running_var.numpy(),
                             0.9 + 0.1 * x.reshape(-1, 6).var(axis=0) * n / (n - 1), rtol=1e-5)
