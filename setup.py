"""avjax: self-supervised audio-visual learning in JAX/Flax."""

import setuptools

setuptools.setup(
    name='avjax',
    version='0.1.0',
    description='Self-supervised audio-visual learning (recon, disentangle, sync) in JAX/Flax.',
    # configs/ is installed as avjax/configs, so that an installed avjax runs
    # `--config=configs/NAME.py` from any folder (avjax.config_lib.resolve).
    packages=[*setuptools.find_packages(include=['avjax', 'avjax.*']), 'avjax.configs'],
    package_dir={'avjax.configs': 'configs'},
    python_requires='>=3.10',
    install_requires=[
        'absl-py',
        'array-record',
        'flax>=0.10',
        'grain>=0.2.10',
        'imageio',
        'imageio-ffmpeg',
        'importlib_resources',  # tensorflow-datasets needs it to prepare, undeclared.
        'jax>=0.5',
        'matplotlib',
        'ml-collections',
        'numpy',
        'optax',
        'orbax-checkpoint',
        'scipy',  # Also a dependency of jax.
        'soundfile',
        'tensorboardX',
        'tensorflow-datasets>=4.9.7',
        'threadpoolctl',  # One BLAS thread in each Grain worker.
        'tqdm',
    ],
    extras_require={
        'beam': ['apache-beam'],  # Preparing a real dataset on a Beam runner (README).
        'test': ['ipykernel', 'mir_eval<0.9', 'nbclient', 'nbformat', 'pytest', 'pytest-xdist',
                 'scikit-learn'],
    },
)
