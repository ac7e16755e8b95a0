"""Flax linen modules. Nothing here imports from `avjax.tasks` or `avjax.data`."""
