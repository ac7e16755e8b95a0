"""Decoding real media (avjax.data.media): rates, frames, repairs and each kind of broken file."""

import numpy as np
import pytest
import soundfile

import media_fixtures
from avjax.data import media


def test_video_is_resampled_to_25_fps_and_cropped_to_a_square(tmp_path):
  path = media_fixtures.write_video(str(tmp_path / 'a.mp4'), seconds=1.2, size=(96, 64), fps=30,
                                    sample_rate=44100, channels=2)
  clip = media.read_clip(path, frame_size=32, expected=media.AudioFormat(44100, 2))
  assert clip.video.shape == (30, 32, 32, 3) and clip.video.dtype == np.uint8
  assert clip.audio.shape == (30 * 640,) and clip.audio.dtype == np.int16
  assert clip.repairs == ()  # 44.1 kHz stereo was what this dataset publishes.


def test_audio_is_16_khz_mono_with_the_tone_kept(tmp_path):
  path = media_fixtures.write_audio(str(tmp_path / 'a.wav'), seconds=1.0, sample_rate=48000,
                                    channels=2, tone=1000)
  audio, repairs = media.read_audio(path)
  assert audio.shape == (16000,)
  spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
  assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second.
  assert repairs == ('resampled from 48000 Hz (expected 16000 Hz)',
                     'down-mixed from 2 channels (expected 1)')


def test_container_audio_agrees_with_soundfile(tmp_path):
  wav = media_fixtures.write_audio(str(tmp_path / 'a.wav'), seconds=1.0, tone=300)
  m4a = media_fixtures.write_audio(str(tmp_path / 'a.m4a'), seconds=1.0, tone=300)
  reference, _ = soundfile.read(wav, dtype='int16')
  decoded, repairs = media.read_audio(m4a)
  assert repairs == ()
  assert abs(len(decoded) - len(reference)) <= 1024  # AAC priming and padding.
  n = min(len(decoded), len(reference), 16000)
  peak = lambda x: np.argmax(np.abs(np.fft.rfft(x[:n].astype(np.float64))))
  assert peak(decoded) == peak(reference) == 300 * n // 16000
  rms = lambda x: np.sqrt(np.mean(x[2000:n - 2000].astype(np.float64) ** 2))
  assert rms(decoded) == pytest.approx(rms(reference), rel=0.05)


@pytest.mark.parametrize('make, kind', [
    (lambda p: media_fixtures.write_empty(p + '.mp4'), media.EMPTY),
    (lambda p: media_fixtures.write_garbage(p + '.mp4'), media.UNREADABLE),
    (lambda p: media_fixtures.truncate(media_fixtures.write_video(p + '.mp4', seconds=2.0)),
     media.TRUNCATED),
    (lambda p: media_fixtures.write_video(p + '.mp4', audio=False), media.NO_AUDIO),
    (lambda p: media_fixtures.write_audio(p + '.m4a'), media.NO_VIDEO),
])
def test_broken_videos_raise_naming_the_file_and_the_kind(tmp_path, make, kind):
  path = make(str(tmp_path / 'clip'))
  with pytest.raises(media.MediaError) as e:
    media.read_clip(path, frame_size=32)
  assert e.value.kind == kind and path in str(e.value)


@pytest.mark.parametrize('make, kind', [
    (lambda p: media_fixtures.write_empty(p), media.EMPTY),
    (lambda p: media_fixtures.write_garbage(p), media.UNREADABLE),
    (lambda p: media_fixtures.truncate(media_fixtures.write_audio(p, seconds=1.0)),
     media.TRUNCATED),
])
def test_broken_wavs_raise_naming_the_file_and_the_kind(tmp_path, make, kind):
  path = make(str(tmp_path / 'a.wav'))
  with pytest.raises(media.MediaError) as e:
    media.read_audio(path)
  assert e.value.kind == kind and path in str(e.value)


def test_a_silent_video_can_be_kept(tmp_path):
  path = media_fixtures.write_video(str(tmp_path / 'a.avi'), seconds=0.8, audio=False)
  clip = media.read_clip(path, frame_size=32, silent_ok=True)
  assert clip.silent and clip.repairs == ('no audio track: silent audio',)
  assert clip.audio.shape == (20 * 640,) and not clip.audio.any()


def test_a_segment_is_cut(tmp_path):
  path = media_fixtures.write_video(str(tmp_path / 'a.mp4'), seconds=3.0)
  clip = media.read_clip(path, frame_size=32, start=1.0, duration=1.2)
  assert clip.video.shape[0] == 30 and clip.audio.shape == (30 * 640,)


def test_too_short_clips_are_refused(tmp_path):
  path = media_fixtures.write_video(str(tmp_path / 'a.mp4'), seconds=0.4)
  with pytest.raises(media.MediaError) as e:
    media.read_clip(path, frame_size=32, min_frames=20)
  assert e.value.kind == media.TOO_SHORT
