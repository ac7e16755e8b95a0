"""Launchers of `python -m avjax.main` on many processes: a TPU pod (`launch.tpu`), a SLURM
GPU cluster (`launch.slurm`) and local processes on one machine (`launch.local`).

Each renders the exact commands (or batch script) with a pure `render(...)`, which
`--dry_run` prints (launch.slurm prints unless --submit) and a run executes; run
them from the repository root.
"""
