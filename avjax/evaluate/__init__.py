"""Downstream evaluation: the probing harness, metrics, suites and their results.

  python -m avjax.evaluate --suite=speech --workdir=DIR [--preset=tiny]
  python -m avjax.evaluate --suite=sync --workdir=DIR [--preset=tiny]

metrics.py (accuracy, UAR, CCC), features.py (per-frame features, test noise),
probe.py (BGRU head, frozen or fine-tuned), speech.py (the speech suite),
localization.py (sound-source maps: scores, baselines, overlays), bss.py
(BSS Eval, SI-SDR), sync.py (the sync suite), results.py (results.json,
results.md, plots), linear_probe.py (the cheap probe the trainer runs at each
evaluation), plots.py (spectrogram panels for the notebooks).
"""
