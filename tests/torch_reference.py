"""Plain-PyTorch models with torchvision's ResNet and timm's ViT parameter names and maths.

The references the converters are checked against (tests/test_convert_torch.py under the
`interop` extra, and tests/fixtures/make_convert_fixtures.py, which writes the small
fixtures of the default suite). Written here, not imported, because torchvision's and
timm's wheels need a torch build other than the CPU one this project installs; the code
follows torchvision/models/resnet.py and timm/models/vision_transformer.py line by line
(module names, padding, strides, eps, the class token and its position embedding, exact
GELU). Needs torch.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, inplanes, planes, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.relu = nn.ReLU(inplace=True)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.downsample = downsample

  def forward(self, x):
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    if self.downsample is not None:
      identity = self.downsample(x)
    return self.relu(out + identity)


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, inplanes, planes, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)   # v1.5: stride here
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = downsample

  def forward(self, x):
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    if self.downsample is not None:
      identity = self.downsample(x)
    return self.relu(out + identity)


LAYERS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
          50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}


class ResNet(nn.Module):
  """torchvision.models.ResNet with a `width` (64 in torchvision) for small test models."""

  def __init__(self, depth=18, num_classes=1000, width=64):
    super().__init__()
    block, layers = LAYERS[depth]
    self.inplanes = width
    self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.relu = nn.ReLU(inplace=True)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    self.layer1 = self._make_layer(block, width, layers[0])
    self.layer2 = self._make_layer(block, width * 2, layers[1], 2)
    self.layer3 = self._make_layer(block, width * 4, layers[2], 2)
    self.layer4 = self._make_layer(block, width * 8, layers[3], 2)
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.fc = nn.Linear(width * 8 * block.expansion, num_classes)

  def _make_layer(self, block, planes, blocks, stride=1):
    downsample = None
    if stride != 1 or self.inplanes != planes * block.expansion:
      downsample = nn.Sequential(
          nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
          nn.BatchNorm2d(planes * block.expansion))
    layers = [block(self.inplanes, planes, stride, downsample)]
    self.inplanes = planes * block.expansion
    layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)

  def forward(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(torch.flatten(self.avgpool(x), 1))


class Attention(nn.Module):
  def __init__(self, dim, num_heads):
    super().__init__()
    self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
    self.qkv = nn.Linear(dim, dim * 3)
    self.proj = nn.Linear(dim, dim)

  def forward(self, x):
    b, n, c = x.shape
    qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    attn = (q * self.scale) @ k.transpose(-2, -1)
    x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
    return self.proj(x)


class Mlp(nn.Module):
  def __init__(self, dim, hidden):
    super().__init__()
    self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

  def forward(self, x):
    return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
  def __init__(self, dim, num_heads, mlp_dim):
    super().__init__()
    self.norm1 = nn.LayerNorm(dim, eps=1e-6)
    self.attn = Attention(dim, num_heads)
    self.norm2 = nn.LayerNorm(dim, eps=1e-6)
    self.mlp = Mlp(dim, mlp_dim)

  def forward(self, x):
    x = x + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
  def __init__(self, patch, dim):
    super().__init__()
    self.proj = nn.Conv2d(3, dim, patch, patch)

  def forward(self, x):
    return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
  """timm's VisionTransformer (class token, pos_embed including the class token's entry,
  pre-norm blocks, final norm, class-token pooling, linear head)."""

  def __init__(self, image_size=224, patch=16, dim=384, depth=12, num_heads=6, mlp_dim=1536,
               num_classes=1000):
    super().__init__()
    self.patch_embed = PatchEmbed(patch, dim)
    n = (image_size // patch) ** 2
    self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 1e-2)
    self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
    self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_dim) for _ in range(depth)])
    self.norm = nn.LayerNorm(dim, eps=1e-6)
    self.head = nn.Linear(dim, num_classes)

  def forward(self, x):
    x = self.patch_embed(x)
    x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
    x = self.norm(self.blocks(x))
    return self.head(x[:, 0])


def randomize(model, seed=0):
  """Random weights everywhere, and BatchNorm running statistics that are not the identity:
  the statistics of a random batch, so the activations stay of order one through the net.
  The classifier is scaled so that logits are of order one to ten, as a trained model's:
  float32 rounding, of tlu and of torch alike, grows with their size."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim > 1:
        scale = 0.3 if name.startswith(('fc.', 'head.')) else 1.0
        p.copy_(scale * torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
      elif name.endswith('weight'):
        p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
      else:
        p.copy_(0.1 * torch.randn(p.shape, generator=g))
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
      for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
          m.momentum = None   # cumulative average: one batch gives its statistics
      model.train()
      model(torch.rand((8, 3, 64, 64), generator=g) * 4 - 2)
  return model.eval()


def tanh_gelu(model):
  """The same model with GELU's tanh approximation (big_vision's), for the .npz references."""
  for m in model.modules():
    if isinstance(m, Mlp):
      m.act = nn.GELU(approximate='tanh')
  return model


def to_vision_transformer_npz(model):
  """{key: array} of a timm-layout ViT in the (pre-linen) vision_transformer .npz layout that
  big_vision's ViT checkpoints use: the class token's position embedding inside posemb."""
  sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  dim = sd['cls_token'].shape[-1]
  heads = model.blocks[0].attn.num_heads
  out = {'embedding/kernel': sd['patch_embed.proj.weight'].transpose(2, 3, 1, 0),
         'embedding/bias': sd['patch_embed.proj.bias'],
         'cls': sd['cls_token'],
         'Transformer/posembed_input/pos_embedding': sd['pos_embed'],
         'Transformer/encoder_norm/scale': sd['norm.weight'],
         'Transformer/encoder_norm/bias': sd['norm.bias'],
         'head/kernel': sd['head.weight'].T, 'head/bias': sd['head.bias']}
  for i in range(len(model.blocks)):
    s, t = f'blocks.{i}', f'Transformer/encoderblock_{i}'
    for src, dst in (('norm1', 'LayerNorm_0'), ('norm2', 'LayerNorm_2')):
      out[f'{t}/{dst}/scale'] = sd[f'{s}.{src}.weight']
      out[f'{t}/{dst}/bias'] = sd[f'{s}.{src}.bias']
    w, b = sd[f'{s}.attn.qkv.weight'], sd[f'{s}.attn.qkv.bias']
    for j, name in enumerate(('query', 'key', 'value')):
      out[f'{t}/MultiHeadDotProductAttention_1/{name}/kernel'] = \
          w[j * dim:(j + 1) * dim].T.reshape(dim, heads, dim // heads)
      out[f'{t}/MultiHeadDotProductAttention_1/{name}/bias'] = \
          b[j * dim:(j + 1) * dim].reshape(heads, dim // heads)
    out[f'{t}/MultiHeadDotProductAttention_1/out/kernel'] = \
        sd[f'{s}.attn.proj.weight'].T.reshape(heads, dim // heads, dim)
    out[f'{t}/MultiHeadDotProductAttention_1/out/bias'] = sd[f'{s}.attn.proj.bias']
    for j, fc in enumerate(('fc1', 'fc2')):
      out[f'{t}/MlpBlock_3/Dense_{j}/kernel'] = sd[f'{s}.mlp.{fc}.weight'].T
      out[f'{t}/MlpBlock_3/Dense_{j}/bias'] = sd[f'{s}.mlp.{fc}.bias']
  return out
