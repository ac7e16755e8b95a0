"""TFDS builders; importing this package registers them with TFDS."""

from avjax.data.builders import avsynth  # noqa: F401  (registers 'avsynth')
from avjax.data.builders import lrw  # noqa: F401  (registers 'lrw')
from avjax.data.builders import voxceleb  # noqa: F401  (registers 'voxceleb1', 'voxceleb2')
from avjax.data.builders import ucf101_av  # noqa: F401  (registers 'ucf101_av')
from avjax.data.builders import video_folder  # noqa: F401  (registers 'video_folder')
from avjax.data.builders import crema_d_av  # noqa: F401  (registers 'crema_d_av')
from avjax.data.builders import ravdess  # noqa: F401  (registers 'ravdess')
