"""The runnable configs, one per job: `python -m avjax.main --config=configs/NAME.py`.

Installed as the package `avjax.configs` (setup.py), so they import each other as
`from avjax.configs import NAME`, from a checkout or an installed avjax alike.
"""
