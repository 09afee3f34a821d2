"""Multi-crop forward pass: views of several resolutions through one model.

SwAV's and DINO's multi-crop (Caron et al. 2020, Section 3.2; Caron et al. 2021, the
reference code's `MultiCropWrapper`) runs the backbone once per resolution (the
consecutive views of one shape, concatenated, so BatchNorm sees each resolution's
batch), concatenates the features of all views and runs the heads once on them all
(a head's BatchNorm sees every crop). With views of one resolution this is the
plain forward pass of the concatenated views.
"""

import jax.numpy as jnp


def resolution_groups(views):
  """[[view, ...], ...]: runs of consecutive views of one (h, w, C), in order."""
  groups = []
  for view in views:
    if groups and groups[-1][0].shape[1:] == view.shape[1:]:
      groups[-1].append(view)
    else:
      groups.append([view])
  return groups


def forward_views(model, params, batch_stats, views, heads, train):
  """Training forward pass of a list of views: (outputs, updated batch_stats).

  Args:
    model: a `tlu.models.Model`; params, batch_stats: its variables.
    views: list of V arrays (N, h_v, w_v, C), the same N images in each.
    heads: names of the heads to run (with those they read), in the model's order.
    train: bool or `tlu.models.norm.Mode`.

  Returns:
    outputs: {'features': (V N, F), <head>: (V N, d)}, rows v N ... (v + 1) N - 1 from
      view v; batch_stats: updated by each resolution's backbone pass in turn, then by
      the heads.
  """
  features = []
  for group in resolution_groups(views):
    out, updates = model.apply({'params': params, 'batch_stats': batch_stats},
                               jnp.concatenate(group), train=train, heads=(),
                               mutable=['batch_stats'])
    batch_stats = {**batch_stats, **updates.get('batch_stats', {})}
    features.append(out['features'])
  out = {'features': jnp.concatenate(features)}
  specs = dict(model.heads)
  for name in heads:
    spec = specs[name]
    if spec.input is None:
      inputs = out['features']
    else:
      inputs = out[spec.input] if isinstance(spec.input, str) else spec.input(out)
    out[name], updates = model.apply({'params': params, 'batch_stats': batch_stats}, name,
                                     inputs, train, method='apply_head',
                                     mutable=['batch_stats'])
    batch_stats = {**batch_stats, **updates.get('batch_stats', {})}
  return out, batch_stats
