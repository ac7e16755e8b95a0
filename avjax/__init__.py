"""avjax: self-supervised audio-visual learning in JAX/Flax."""
