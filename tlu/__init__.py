"""tlu: transfer learning combined with unsupervised learning, in JAX/Flax."""
