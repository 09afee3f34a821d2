"""One device mesh over every device of every host, batch sharded on `data`."""

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = 'data'


def make_mesh(devices=None):
  """A 1-D mesh named `data` over `devices` (default: all devices of all processes).

  Axis types are given explicitly (Auto: GSPMD propagates shardings inside jit)
  so the code behaves the same on jax versions whose default differs.
  """
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh):
  """Leading (batch) axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA))


def replicated(mesh):
  return NamedSharding(mesh, P())


def to_global(batch, mesh):
  """Process-local numpy batch (dict of arrays) -> global jax.Arrays sharded on `data`.

  Each process passes its own slice of the global batch; the leading dimension of the
  result is the global batch.
  """
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      batch)
