"""Decoding real audio and video files into avsynth's conventions.

  clip = read_clip('lipread_mp4/ABOUT/train/ABOUT_00001.mp4', frame_size=64)
  clip.audio   # int16 [T * 640], 16 kHz mono
  clip.video   # uint8 [T, 64, 64, 3], 25 fps
  clip.repairs # ('resampled from 44100 Hz', ...)

Containers are decoded by imageio's bundled ffmpeg binary (`imageio-ffmpeg`, so
no system package is needed), WAV and FLAC with soundfile. Video is resampled to
25 fps and cut to the centred square of its shorter side, then scaled to
`frame_size` (face-centred datasets such as LRW and VoxCeleb2 are square
already, so they are only scaled). Audio is resampled to 16 kHz and
down-mixed to mono; a file whose rate or channel count differs from what its
dataset publishes is still read, and says so in `repairs`. A file that cannot
be read raises `MediaError`, which names the file and the reason.

Audio and video share the file's timeline: sample 0 of the audio and frame 0 of
the video are the same moment (the file's start, or `start`). A track that
begins later than the other (by an MP4 edit list, which ffmpeg applies by
default, an AVI stream header's start or MPEG-TS timestamps) is padded at its
start, the audio with silence and the video by repeating its first frame; ffmpeg
pads by the decoded timestamps (`aresample` with `first_pts=0`, `fps` with
`start_time=0`). A delay of a frame or more is noted in `repairs` ('audio
delayed: ...') when ffmpeg prints the track's start, as the bundled ffmpeg 9
does for MP4, MKV, FLV and MPEG-TS; an AVI stream's start is honoured but not
printed, so not noted.
"""

import dataclasses
import os
import re
import struct
import subprocess

import imageio_ffmpeg
import numpy as np
import scipy.signal
import soundfile

from avjax.data import ops

SOUNDFILE_EXTENSIONS = ('.wav', '.flac')
# Decoded media shorter than this share of the duration in its header is truncated.
MIN_DECODED_SHARE = 0.9

# Why a file is skipped; MediaError.kind is one of these.
EMPTY, UNREADABLE, TRUNCATED = 'empty', 'unreadable', 'truncated'
NO_AUDIO, NO_VIDEO, TOO_SHORT = 'no audio track', 'no video track', 'too short'


class MediaError(ValueError):
  """A file that cannot be used: `kind` (one of the constants above) and detail."""

  def __init__(self, path, kind, detail=''):
    super().__init__(f'{path}: {kind}' + (f' ({detail})' if detail else ''))
    self.path, self.kind, self.detail = os.fspath(path), kind, detail


@dataclasses.dataclass(frozen=True)
class AudioFormat:
  """A dataset's published audio format; anything else is repaired and reported."""
  sample_rate: int = ops.SAMPLE_RATE
  channels: int = 1


@dataclasses.dataclass(frozen=True)
class Clip:
  audio: np.ndarray          # int16 [N] at 16 kHz (N = 640 T when there is video).
  video: np.ndarray | None   # uint8 [T, S, S, 3] at 25 fps, or None (audio only).
  repairs: tuple = ()        # What was changed to read it, e.g. 'resampled from 8000 Hz'.
  silent: bool = False       # No audio track: `audio` is silence (`silent_ok`).


@dataclasses.dataclass(frozen=True)
class Streams:
  """What a container's header says (`probe`)."""
  duration: float | None
  video: bool
  sample_rate: int | None   # None: no audio track.
  channels: int | None
  audio_start: float = 0.0  # Seconds into the file at which a track begins, as ffmpeg
  video_start: float = 0.0  # prints it (0 when it prints no track's start).


def ffmpeg():
  """The bundled ffmpeg executable."""
  return imageio_ffmpeg.get_ffmpeg_exe()


def _check_nonempty(path):
  if not os.path.exists(path):
    raise MediaError(path, UNREADABLE, 'no such file')
  if os.path.getsize(path) == 0:
    raise MediaError(path, EMPTY, '0 bytes')


def _last_line(text):
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  return lines[-1] if lines else 'ffmpeg failed'


_CHANNELS = {'mono': 1, 'stereo': 2, '2.1': 3, '4.0': 4, 'quad': 4, '5.0': 5, '5.1': 6,
             '6.1': 7, '7.1': 8}


def _channel_count(layout):
  match = re.match(r'(\d+) channels', layout)
  return int(match.group(1)) if match else _CHANNELS.get(layout.split('(')[0].strip())


def _starts_as_mp4(path):
  with open(path, 'rb') as f:
    return f.read(8)[4:] == b'ftyp'


def _track_start(text, kind, file_start):
  """Seconds after the file's start at which its first `kind` track begins (ffmpeg prints a
  nonzero start of a track; one it does not print is 0)."""
  line = re.search(rf'Stream #[^\n]*?{kind}: [^\n]*', text)
  start = line and re.search(r', start (-?\d+(?:\.\d+)?)', line.group(0))
  return max(0.0, (float(start.group(1)) if start else 0.0) - file_start)


def probe(path):
  """The streams of a media file, from ffmpeg's reading of its header."""
  _check_nonempty(path)
  result = subprocess.run([ffmpeg(), '-hide_banner', '-nostdin', '-i', os.fspath(path)],
                          capture_output=True, text=True, errors='replace', check=False)
  text = result.stderr
  if 'moov atom not found' in text and _starts_as_mp4(path):  # Cut before its index.
    raise MediaError(path, TRUNCATED, 'moov atom not found')
  if 'Stream #' not in text:
    raise MediaError(path, UNREADABLE, _last_line(text))
  duration = re.search(r'Duration: (\d+):(\d+):(\d+(?:\.\d+)?)', text)
  if duration:
    h, m, s = duration.groups()
    duration = 3600 * int(h) + 60 * int(m) + float(s)
  audio = re.search(r'Stream #.*?Audio: [^,]+(?:\([^)]*\))*[^,]*, (\d+) Hz, ([^,\n]+)', text)
  if os.fspath(path).lower().endswith('.avi'):
    duration = max(duration or 0, _avi_header_seconds(path) or 0) or None
  file_start = re.search(r'Duration: [^\n]*?, start: (-?\d+(?:\.\d+)?)', text)
  file_start = float(file_start.group(1)) if file_start else 0.0
  return Streams(duration=duration, video=bool(re.search(r'Stream #.*?Video: ', text)),
                 sample_rate=int(audio.group(1)) if audio else None,
                 channels=_channel_count(audio.group(2)) if audio else None,
                 audio_start=_track_start(text, 'Audio', file_start),
                 video_start=_track_start(text, 'Video', file_start))


def _repairs(path, rate, channels, expected):
  repairs = []
  if rate != expected.sample_rate:
    repairs.append(f'resampled from {rate} Hz (expected {expected.sample_rate} Hz)')
  if channels is None:
    raise MediaError(path, UNREADABLE, 'unknown audio channel layout')
  if channels != expected.channels:
    repairs.append(f'down-mixed from {channels} channels (expected {expected.channels})')
  return repairs


def _delay_repairs(track, begins, start, padding):
  """A note when `track` begins a frame or more after the part read starts (padded there)."""
  if begins - (start or 0) < 1 / ops.FPS:
    return []
  return [f'{track} delayed: begins {begins:.3f} s into the file, {padding}']


def resample(audio, rate, target=ops.SAMPLE_RATE):
  """float audio [N] from `rate` to `target` Hz (polyphase, anti-aliased)."""
  if rate == target:
    return audio
  g = np.gcd(rate, target)
  return scipy.signal.resample_poly(audio, target // g, rate // g)


def _read_soundfile(path, expected):
  """WAV or FLAC -> (float32 mono at 16 kHz, repairs)."""
  try:
    info = soundfile.info(path)
    truncated = re.search(r'data\s*:\s*(\d+) \(should be (\d+)\)', info.extra_info)
    audio, rate = soundfile.read(path, dtype='float32', always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError) as e:
    raise MediaError(path, UNREADABLE, str(e).replace(f"'{path}'", 'file')) from e
  if truncated and int(truncated.group(2)) < MIN_DECODED_SHARE * int(truncated.group(1)):
    raise MediaError(path, TRUNCATED, f'{truncated.group(2)} of the {truncated.group(1)} '
                     'data bytes its header declares')
  if audio.size == 0:
    raise MediaError(path, EMPTY, 'no audio samples')
  repairs = _repairs(path, rate, audio.shape[1], expected)
  return resample(audio.mean(axis=1), rate), repairs


def _read_container_audio(path, streams, expected, start, duration):
  """Any container's audio track -> (float32 mono at 16 kHz, repairs), by ffmpeg."""
  if streams.sample_rate is None:
    raise MediaError(path, NO_AUDIO)
  repairs = _repairs(path, streams.sample_rate, streams.channels, expected) + _delay_repairs(
      'audio', streams.audio_start, start, 'padded with silence')
  command = [ffmpeg(), '-v', 'error', '-nostdin', *_seek(start), '-i', os.fspath(path),
             *_limit(duration), '-vn', '-af', 'aresample=async=1:first_pts=0', '-ac', '1',
             '-ar', str(ops.SAMPLE_RATE), '-f', 's16le', '-', *_shared_timeline(duration)]
  result = subprocess.run(command, capture_output=True, check=False)
  if result.returncode != 0:
    raise MediaError(path, UNREADABLE, _last_line(result.stderr.decode(errors='replace')))
  return ops.to_float(np.frombuffer(result.stdout, np.int16)), repairs


def _seek(start):
  return ['-ss', f'{start:.3f}'] if start else []


def _limit(duration):
  return ['-t', f'{duration:.3f}'] if duration else []


def _shared_timeline(duration):
  """A second output that copies every audio and video track to nowhere: ffmpeg then takes
  the file's start over all of them (for MPEG-TS and -PS it takes it over the tracks read
  only), so that the audio run and the video run share a timeline."""
  return ['-map', '0:v?', '-map', '0:a?', '-c', 'copy', *_limit(duration), '-f', 'null', '-']


def read_audio(path, expected=AudioFormat(), start=None, duration=None):
  """(int16 mono audio at 16 kHz, repairs) of an audio or video file."""
  _check_nonempty(path)
  if os.fspath(path).lower().endswith(SOUNDFILE_EXTENSIONS) and not (start or duration):
    audio, repairs = _read_soundfile(path, expected)
    header_seconds = None
  else:
    streams = probe(path)
    audio, repairs = _read_container_audio(path, streams, expected, start, duration)
    header_seconds = _expected_seconds(streams, start, duration,
                                       streams.video_start - streams.audio_start)
  _check_length(path, len(audio) / ops.SAMPLE_RATE, header_seconds, 'audio')
  return ops.to_int16(audio), tuple(repairs)


def _avi_header_seconds(path):
  """An AVI's length by its main header (ffmpeg reports only what a cut file holds)."""
  with open(path, 'rb') as f:
    head = f.read(56)
  if len(head) < 56 or head[:4] != b'RIFF' or head[8:12] != b'AVI ' or head[24:28] != b'avih':
    return None
  micro_seconds_per_frame, total_frames = struct.unpack('<I', head[32:36])[0], struct.unpack(
      '<I', head[48:52])[0]
  return micro_seconds_per_frame * total_frames / 1e6 or None


def _expected_seconds(streams, start, duration, lead=0.0):
  """Seconds a track should decode to by the header; `lead`: how much earlier it begins than
  the other track, by which it may end earlier than the file."""
  if streams.duration is None:
    return None
  left = streams.duration - (start or 0) - max(lead, 0)
  return min(left, duration) if duration else left


def _check_length(path, seconds, header_seconds, what):
  if seconds == 0:
    raise MediaError(path, TRUNCATED if header_seconds else EMPTY, f'no {what} decoded')
  if header_seconds and seconds < MIN_DECODED_SHARE * header_seconds - 0.1:
    raise MediaError(path, TRUNCATED, f'{what}: decoded {seconds:.2f} s of the '
                     f'{header_seconds:.2f} s its header declares')


def read_video(path, frame_size, start=None, duration=None, streams=None):
  """uint8 frames [T, S, S, 3] at 25 fps: the centred square, scaled to `frame_size`."""
  streams = streams or probe(path)
  if not streams.video:
    raise MediaError(path, NO_VIDEO)
  square = "crop='min(iw,ih)':'min(iw,ih)'"
  command = [ffmpeg(), '-v', 'error', '-nostdin', *_seek(start), '-i', os.fspath(path),
             *_limit(duration), '-an', '-vf',
             f'fps={ops.FPS}:start_time=0,{square},scale={frame_size}:{frame_size}:flags=area',
             '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-', *_shared_timeline(duration)]
  result = subprocess.run(command, capture_output=True, check=False)
  if result.returncode != 0:
    raise MediaError(path, UNREADABLE, _last_line(result.stderr.decode(errors='replace')))
  frames = np.frombuffer(result.stdout, np.uint8)
  frames = frames[:len(frames) // (frame_size * frame_size * 3) * frame_size * frame_size * 3]
  frames = frames.reshape(-1, frame_size, frame_size, 3)
  _check_length(path, len(frames) / ops.FPS, _expected_seconds(
      streams, start, duration, streams.audio_start - streams.video_start), 'video')
  return frames


def _pad_or_trim(audio, length):
  """`audio` cut, or padded with silence, to `length` samples."""
  return np.pad(audio[:length], (0, max(0, length - len(audio))))


def read_clip(path, frame_size=None, expected=AudioFormat(), start=None, duration=None,
              min_frames=1, silent_ok=False, audio_path=None):
  """A file's audio (and video, if `frame_size`), aligned to 640 samples a frame.

  Args:
    path: the file.
    frame_size: frames are scaled to this square size; None reads the audio only.
    expected: the dataset's published audio format (any other is repaired).
    start, duration: seconds to read, default the whole file.
    min_frames: fewer video frames (or audio frames of 640 samples) is TOO_SHORT.
    silent_ok: a video without an audio track gets silent audio (a repair)
      instead of raising NO_AUDIO.
    audio_path: read the audio from this file instead (CREMA-D's WAVs beside its FLVs).
  """
  path = os.fspath(path)
  audio_path = os.fspath(audio_path or path)
  silent = False
  if frame_size is None:
    audio, repairs = read_audio(audio_path, expected, start, duration)
    frames = len(audio) // ops.SAMPLES_PER_FRAME
    video = None
  else:
    streams = probe(path)
    video = read_video(path, frame_size, start, duration, streams)
    frames = len(video)
    silent = silent_ok and audio_path == path and streams.sample_rate is None
    if silent:
      audio, repairs = np.zeros(0, np.int16), ('no audio track: silent audio',)
    else:
      audio, repairs = read_audio(audio_path, expected, start, duration)
    audio = _pad_or_trim(audio, frames * ops.SAMPLES_PER_FRAME)
    repairs += tuple(_delay_repairs('video', streams.video_start, start, 'first frame repeated'))
  if frames < min_frames:
    raise MediaError(path, TOO_SHORT, f'{frames} frames of 40 ms, fewer than {min_frames}')
  return Clip(audio=audio, video=video, repairs=repairs, silent=silent)
