"""Decoding real media (avjax.data.media): rates, frames, repairs and each kind of broken file."""

import subprocess

import numpy as np
import pytest
import soundfile

import media_fixtures
from avjax.data import media
from avjax.data import ops


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


def _loudest_second(audio):
  return np.argmax(np.abs(audio.astype(np.int32))) / ops.SAMPLE_RATE


def _brightest_second(video):
  return np.argmax(video.mean(axis=(1, 2, 3))) / ops.FPS


def _track_from_its_first_sample(path):
  """A file's audio as decoded before alignment: from its first sample, wherever that is."""
  command = [media.ffmpeg(), '-v', 'error', '-nostdin', '-i', path, '-vn', '-ac', '1', '-ar',
             str(ops.SAMPLE_RATE), '-f', 's16le', '-']
  return np.frombuffer(subprocess.run(command, capture_output=True, check=True).stdout, np.int16)


@pytest.mark.parametrize('ext', ['mp4', 'avi', 'ts'])
def test_audio_that_begins_late_is_aligned_with_the_video(tmp_path, ext):
  path = media_fixtures.write_flash_and_click(str(tmp_path / f'a.{ext}'), delay=0.2, at=0.4)
  # The delay is in the file: from its first sample, the audio clicks 2 frames early or more
  # (0.2 s in AVI's PCM; less in MP4 and MPEG-TS, whose first frame holds encoder priming).
  assert _loudest_second(_track_from_its_first_sample(path)) < 0.4 - 2 / ops.FPS
  # ffmpeg prints the track's start (MP4: its edit list), less the priming; not AVI's.
  begins = media.probe(path).audio_start
  assert 0.1 < begins <= 0.2 if ext != 'avi' else begins == 0
  note = (f'audio delayed: begins {begins:.3f} s into the file, padded with silence',)
  for start, duration in ((None, None), (0.08, 0.8)):
    clip = media.read_clip(path, frame_size=16, start=start, duration=duration)
    flash = _brightest_second(clip.video)
    assert flash == pytest.approx(0.4 - (start or 0))
    assert abs(_loudest_second(clip.audio) - flash) < 1 / ops.FPS
    assert clip.repairs == (note if begins else ())
  audio, _ = media.read_audio(path)
  assert abs(_loudest_second(audio) - 0.4) < 1 / ops.FPS


@pytest.mark.parametrize('ext', ['mp4', 'ts'])
def test_video_that_begins_late_is_aligned_with_the_audio(tmp_path, ext):
  path = media_fixtures.write_flash_and_click(str(tmp_path / f'a.{ext}'), delay=-0.2, at=0.4)
  begins = media.probe(path).video_start
  assert 0.2 <= begins < 0.2 + 1 / ops.FPS  # MPEG-TS: after audio whose priming begins earlier.
  for start in (None, 0.08):
    clip = media.read_clip(path, frame_size=16, start=start)
    flash = _brightest_second(clip.video)  # 0.2 s into the video track.
    assert flash == pytest.approx(begins + 0.2 - (start or 0), abs=0.5 / ops.FPS)
    assert abs(_loudest_second(clip.audio) - flash) < 1 / ops.FPS
    assert clip.repairs == (
        f'video delayed: begins {begins:.3f} s into the file, first frame repeated',)
