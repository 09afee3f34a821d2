"""Converters from torchvision / timm / big_vision files: parity on small fixtures, every
failure mode's message, and the input conventions they record (no torch needed).

The fixtures are random models saved by PyTorch with the logits PyTorch computed for fixed
inputs (tests/fixtures/make_convert_fixtures.py); full-size parity is tests/test_convert_torch.py.
"""

import json
import os
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from tlu.convert import ConvertError, FileFormatError, convert, files
from tlu.models import build_model, heads
from tlu.models.model import normalize
from tlu.models.vit import posemb_sincos_2d, resample_posemb
from tlu.transfer.paths import flatten

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
TINY_VIT = dict(width=16, depth=2, mlp_dim=32, num_heads=2)
CASES = {   # name in convert_io.npz: (format, file, arch, overrides)
    'resnet18_w2': ('torchvision', 'resnet18_w2.pth', 'resnet18', {'width': 2}),
    'resnet50_w2': ('torchvision', 'resnet50_w2_legacy.pth', 'resnet50', {'width': 2}),
    'vit_tiny_timm': ('timm', 'vit_tiny_timm.safetensors', 'vit_s16', TINY_VIT),
    'vit_tiny_big_vision': ('big_vision', 'vit_tiny_big_vision.npz', 'vit_s16', TINY_VIT),
}


def fixture(name):
  return os.path.join(FIXTURES, name)


def logits(converted, images):
  model = build_model(converted.model, {'head': heads.classifier(converted.num_classes)})
  return np.asarray(model.apply(converted.variables, jnp.asarray(images), heads=('head',))['head'])


def write_safetensors(path, arrays):
  """A minimal safetensors writer (float32 only), independent of tlu's reader."""
  header, offset, blobs = {}, 0, []
  for name, a in arrays.items():
    data = np.ascontiguousarray(a, np.float32).tobytes()
    header[name] = {'dtype': 'F32', 'shape': list(a.shape),
                    'data_offsets': [offset, offset + len(data)]}
    offset += len(data)
    blobs.append(data)
  head = json.dumps(header).encode()
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(head)) + head + b''.join(blobs))


@pytest.fixture(scope='module')
def io():
  with np.load(fixture('convert_io.npz')) as z:
    return {k: z[k] for k in z.files}


@pytest.mark.parametrize('name', sorted(CASES))
def test_converted_model_computes_what_pytorch_computed(io, name):
  fmt, file, arch, overrides = CASES[name]
  converted = convert(fmt, fixture(file), arch, overrides)
  got = logits(converted, io[f'{name}/input'])
  np.testing.assert_allclose(got, io[f'{name}/logits'], atol=1e-5, rtol=0)
  assert converted.num_classes == 10 and not converted.report.kept_fresh


def test_torchvision_report_names_every_leaf_and_skips_only_num_batches_tracked():
  c = convert('torchvision', fixture('resnet18_w2.pth'), 'resnet18', {'width': 2})
  adapted = {t: (s, how) for t, s, how in c.report.adapted}
  assert adapted['params/backbone/stem_conv/kernel'] == ('conv1.weight', 'OIHW->HWIO')
  assert adapted['params/head/kernel'] == ('fc.weight', 'transposed')
  assert ('batch_stats/backbone/stage2_block0/proj_bn/var',
          'layer2.0.downsample.1.running_var') in c.report.copied
  assert c.report.unused_source and all(k.endswith('num_batches_tracked')
                                        for k in c.report.unused_source)


def test_input_conventions_are_recorded_per_format():
  tv = convert('torchvision', fixture('resnet18_w2.pth'), 'resnet18', {'width': 2}).model
  assert tv['input_mean'] == (0.485, 0.456, 0.406) and tv['input_range'] == (0.0, 1.0)
  assert tv['stem'] == 'imagenet' and tv['image_size'] == 224
  timm = convert('timm', fixture('vit_tiny_timm.safetensors'), 'vit_s16', TINY_VIT).model
  assert timm['input_std'] == (0.5, 0.5, 0.5) and timm['approximate_gelu'] is False
  assert timm['image_size'] == 32 and timm['pool'] == 'tok'
  bv = convert('big_vision', fixture('vit_tiny_big_vision.npz'), 'vit_s16', TINY_VIT).model
  assert bv['input_range'] == (-1.0, 1.0) and bv['approximate_gelu'] is True


def test_timm_config_json_beside_the_file_gives_mean_and_std(tmp_path):
  path = tmp_path / 'model.safetensors'
  path.write_bytes(open(fixture('vit_tiny_timm.safetensors'), 'rb').read())
  (tmp_path / 'config.json').write_text(json.dumps(
      {'pretrained_cfg': {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
                          'input_size': [3, 32, 32]}}))
  model = convert('timm', str(path), 'vit_s16', TINY_VIT).model
  assert model['input_mean'] == (0.485, 0.456, 0.406)


def test_default_input_convention_is_tlus_own_bit_for_bit():
  x = jax.random.uniform(jax.random.key(0), (2, 4, 4, 3))
  np.testing.assert_array_equal(normalize(x), (x - 0.5) / 0.25)
  cnn = build_model({'name': 'cnn', 'widths': (4,), 'features': 8})
  assert (cnn.input_range, cnn.input_mean, cnn.input_std) == ((0.0, 1.0), (0.5,), (0.25,))


def test_normalisation_per_channel_and_in_minus_one_to_one():
  x = jnp.full((1, 2, 2, 3), 0.75)
  y = normalize(x, (0.0, 1.0), (0.5, 0.25, 0.75), (0.5, 0.25, 0.25))
  np.testing.assert_allclose(y[0, 0, 0], [0.5, 2.0, 0.0])
  np.testing.assert_allclose(normalize(x, (-1.0, 1.0), (0.0,), (1.0,)), 0.5)
  grey = normalize(jnp.full((1, 2, 2, 1), 0.75), (0.0, 1.0), (0.5, 0.25, 0.75), (0.5, 0.25, 0.25))
  np.testing.assert_allclose(grey, (0.75 - 0.5) / (1 / 3), rtol=1e-6)   # channel averages


def test_resample_posemb_is_scipy_zoom_order_1():
  pe = np.random.default_rng(0).normal(size=(1, 7 * 7, 5)).astype(np.float32)
  got = resample_posemb(pe, (12, 12))
  want = scipy.ndimage.zoom(pe.reshape(7, 7, 5), (12 / 7, 12 / 7, 1), order=1).reshape(1, 144, 5)
  np.testing.assert_allclose(got, want, atol=1e-5)
  np.testing.assert_allclose(resample_posemb(jnp.asarray(pe), (12, 12)), want, atol=1e-5)


def test_vit_takes_another_image_size_by_resampling_its_position_embeddings(io):
  base = convert('timm', fixture('vit_tiny_timm.safetensors'), 'vit_s16', TINY_VIT)
  big = convert('timm', fixture('vit_tiny_timm.safetensors'), 'vit_s16',
                {**TINY_VIT, 'image_size': 64})
  assert big.variables['params']['backbone']['pos_embedding'].shape == (1, 16, 16)
  assert ('resampled 2x2->4x4' in dict((t, h) for t, _, h in big.report.adapted)[
      'params/backbone/pos_embedding'])
  x = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
  np.testing.assert_allclose(logits(base, x), logits(big, x), atol=1e-6)   # on the fly == stored
  np.testing.assert_allclose(logits(big, io['vit_tiny_timm/input']),
                             io['vit_tiny_timm/logits'], atol=1e-5)        # native size unchanged


def test_sincos2d_position_embeddings():
  pe = posemb_sincos_2d(3, 5, 8)[0]   # row-major positions; quarters sin x, cos x, sin y, cos y
  omega = 1 / 10_000 ** (np.arange(2) / 1)
  for i, (y, x) in enumerate((y, x) for y in range(3) for x in range(5)):
    np.testing.assert_allclose(pe[i], np.concatenate([np.sin(x * omega), np.cos(x * omega),
                                                      np.sin(y * omega), np.cos(y * omega)]),
                               atol=1e-6)


def test_big_vision_plain_vit_with_mean_pooling_sincos2d_and_pre_logits(tmp_path):
  """big_vision's ImageNet-1k baselines (vit_s16_i1k_*.npz) have no posemb and no class token:
  a tlu model of that kind, saved with big_vision's keys, converts back to itself."""
  cfg = {'name': 'vit_s16', **TINY_VIT, 'pool': 'gap', 'posemb': 'sincos2d',
         'representation_size': 16, 'image_size': 32}
  model = build_model(cfg, {'head': heads.classifier(10)})
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  keys = {('params/' + p[len('backbone/'):] if p.startswith('backbone/') else 'params/' + p): v
          for p, v in flatten(variables['params']).items()}
  np.savez(tmp_path / 'bv.npz', **keys)
  converted = convert('big_vision', str(tmp_path / 'bv.npz'), 'vit_s16', TINY_VIT)
  assert converted.model['posemb'] == 'sincos2d' and converted.model['pool'] == 'gap'
  assert converted.model['representation_size'] == 16
  x = np.random.default_rng(0).random((2, 48, 48, 3)).astype(np.float32)   # any size
  want = model.apply(variables, jnp.asarray(normalize(x, (-1.0, 1.0), (0.0,), (1.0,)) * 0.25
                                            + 0.5), heads=('head',))['head']
  np.testing.assert_allclose(logits(converted, x), want, atol=1e-5)


# ------------------------------------------------------------------------- failure modes

def test_wrong_arch_says_what_the_file_looks_like(tmp_path):
  with pytest.raises(ConvertError, match=r'lacks layer1\.0\.bn3.*looks like a resnet18 of width 2'):
    convert('torchvision', fixture('resnet18_w2.pth'), 'resnet50', {'width': 2})
  arrays = files.read(fixture('resnet18_w2.pth'))
  arrays.update({k.replace('layer1.1', 'layer1.2'): v for k, v in arrays.items()
                 if k.startswith('layer1.1')})
  write_safetensors(tmp_path / 'r.safetensors', arrays)
  with pytest.raises(ConvertError, match=r'holds layer1\.2\.bn1\.bias.*which resnet18 .* does '
                                         r'not have.*stages have \(3, 2, 2, 2\) blocks'):
    convert('torchvision', str(tmp_path / 'r.safetensors'), 'resnet18', {'width': 2})
  with pytest.raises(ConvertError, match=r'lacks blocks\.10\..*ViT of width 16, depth 2, MLP 32'):
    convert('timm', fixture('vit_tiny_timm.safetensors'), 'vit_s16')
  with pytest.raises(ConvertError, match=r'shape \(16, 16, 3, 16\).*needs \(16, 16, 3, 384\)'
                                         r'.*width 16, depth 2'):
    convert('timm', fixture('vit_tiny_timm.safetensors'), 'vit_s16', {'depth': 2})
  with pytest.raises(ConvertError, match='16x16 patches, vit_s32 32x32'):
    convert('timm', fixture('vit_tiny_timm.safetensors'), 'vit_s32', TINY_VIT)


def test_a_file_with_a_wider_net_fails_on_the_first_shape(tmp_path):
  arrays = files.read(fixture('resnet18_w2.pth'))
  write_safetensors(tmp_path / 'r18.safetensors', arrays)
  with pytest.raises(ConvertError, match=r"conv1\.weight gives params/backbone/stem_conv/kernel "
                                         r"the shape \(7, 7, 3, 2\), but resnet18 \(torchvision "
                                         r"layout\) needs \(7, 7, 3, 64\)"):
    convert('torchvision', str(tmp_path / 'r18.safetensors'), 'resnet18')


def test_missing_key(tmp_path):
  arrays = files.read(fixture('resnet18_w2.pth'))
  del arrays['layer4.1.bn2.running_var']
  write_safetensors(tmp_path / 'r18.safetensors', arrays)
  with pytest.raises(ConvertError, match=r'^the file lacks layer4\.1\.bn2\.running_var, which '
                                         r'resnet18 \(torchvision layout\) needs'):
    convert('torchvision', str(tmp_path / 'r18.safetensors'), 'resnet18', {'width': 2})


def test_a_variant_with_parts_tlu_lacks_is_refused(tmp_path):
  arrays = files.read(fixture('vit_tiny_timm.safetensors'))
  arrays['blocks.0.ls1.gamma'] = np.ones(16, np.float32)
  write_safetensors(tmp_path / 'vit.safetensors', arrays)
  with pytest.raises(ConvertError, match=r'holds blocks\.0\.ls1\.gamma.*layer scale'):
    convert('timm', str(tmp_path / 'vit.safetensors'), 'vit_s16', TINY_VIT)


@pytest.mark.parametrize('name,cut', [('resnet18_w2.pth', 0.5), ('resnet50_w2_legacy.pth', 0.9),
                                      ('vit_tiny_timm.safetensors', 0.9),
                                      ('vit_tiny_big_vision.npz', 0.5)])
def test_truncated_file(tmp_path, name, cut):
  data = open(fixture(name), 'rb').read()
  path = tmp_path / name
  path.write_bytes(data[:int(len(data) * cut)])
  with pytest.raises(FileFormatError, match='truncated'):
    files.read(str(path))


def test_unreadable_files(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    files.read(str(tmp_path / 'none.pth'))
  (tmp_path / 'x.h5').write_bytes(b'\0')
  with pytest.raises(FileFormatError, match="unknown checkpoint extension '.h5'"):
    files.read(str(tmp_path / 'x.h5'))
  (tmp_path / 'x.pth').write_bytes(b'not a checkpoint at all')
  with pytest.raises(FileFormatError, match='not a PyTorch checkpoint'):
    files.read(str(tmp_path / 'x.pth'))


class _Exploit:
  def __reduce__(self):
    return (os.system, ('touch /tmp/tlu_convert_pwned',))


def test_a_torch_file_cannot_run_code(tmp_path):
  path = tmp_path / 'evil.pth'
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', pickle.dumps({'w': _Exploit()}, protocol=2))
  with pytest.raises(FileFormatError, match=r'pickles a (posix|os|nt)\.system, not only tensors'):
    files.read(str(path))
  assert not os.path.exists('/tmp/tlu_convert_pwned')


def test_format_and_family_must_agree():
  with pytest.raises(ConvertError, match="torchvision files hold resnets for tlu; arch 'vit_s16'"):
    convert('torchvision', fixture('resnet18_w2.pth'), 'vit_s16')
  with pytest.raises(ConvertError, match="arch 'resnet77'"):
    convert('torchvision', fixture('resnet18_w2.pth'), 'resnet77')
  with pytest.raises(ConvertError, match='is not a big_vision ViT'):
    convert('big_vision', fixture('vit_tiny_timm.safetensors'), 'vit_s16', TINY_VIT)
