"""Tiny media files for the real-dataset builder tests: made here, with the bundled ffmpeg
(videos) and soundfile (WAVs), including each kind of broken file."""

import os
import struct
import subprocess

import numpy as np
import soundfile

from avjax.data import media

# Codecs by extension, as the datasets publish them.
_VIDEO_CODECS = {'.mp4': ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac'],
                 '.flv': ['-c:v', 'flv', '-c:a', 'pcm_s16le'],  # Sorenson, as CREMA-D.
                 '.avi': ['-c:v', 'mpeg4', '-c:a', 'pcm_s16le'],
                 '.ts': ['-c:v', 'mpeg2video', '-c:a', 'mp2']}  # Broadcast recordings.
_AUDIO_CODECS = {'.m4a': ['-c:a', 'aac'], '.wav': ['-c:a', 'pcm_s16le']}


def _run(args):
  subprocess.run([media.ffmpeg(), '-v', 'error', '-nostdin', '-y', *args], check=True)


def write_video(path, seconds=1.0, size=(64, 48), fps=25, sample_rate=16000, channels=1,
                audio=True, tone=440):
  """A test-pattern video with a sine tone, encoded by its extension's codec."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  inputs = ['-f', 'lavfi', '-i', f'testsrc=size={size[0]}x{size[1]}:rate={fps}']
  if audio:
    inputs += ['-f', 'lavfi', '-i', f'sine=frequency={tone}:sample_rate={sample_rate}']
  codec = _VIDEO_CODECS[os.path.splitext(path)[1]]
  if not audio:
    codec = [c for c in codec[:-2]] + ['-an']
  audio_args = ['-ac', str(channels), '-ar', str(sample_rate)] if audio else []
  _run([*inputs, '-t', f'{seconds}', *codec, *audio_args, path])
  return path


def write_audio(path, seconds=1.0, sample_rate=16000, channels=1, tone=440):
  """A sine tone: WAV and FLAC by soundfile, anything else (.m4a) by ffmpeg."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  wave = 0.3 * np.sin(2 * np.pi * tone * t)
  if path.endswith(('.wav', '.flac')):
    soundfile.write(path, np.repeat(wave[:, None], channels, axis=1), sample_rate)
  else:
    _run(['-f', 'lavfi', '-i', f'sine=frequency={tone}:sample_rate={sample_rate}',
          '-af', 'volume=2.4',  # lavfi's sine has amplitude 1/8; 0.3 as above.
          '-t', f'{seconds}', '-ac', str(channels), *_AUDIO_CODECS[os.path.splitext(path)[1]],
          path])
  return path


def write_flash_and_click(path, delay, at=0.4, seconds=1.0, fps=25, sample_rate=16000):
  """A black video with one white frame and an audio click, both at `at` s of the file's
  timeline, whose audio track begins `delay` s after its video (or the video -`delay` s
  after its audio): muxed with -itsoffset (MP4: an edit list), or for delayed audio in
  AVI, whose muxer drops -itsoffset, with the audio stream header's start (dwStart)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  audio_late, video_late = max(delay, 0), max(-delay, 0)
  flash = round((at - video_late) * fps)
  video = (f'color=black:size=32x32:rate={fps}:duration={seconds - video_late},'
           f"drawbox=color=white:t=fill:enable='eq(n,{flash})'")
  click = at - audio_late
  audio = (f"aevalsrc='0.9*between(t,{click},{click + 0.002})':s={sample_rate}:"
           f'd={seconds - audio_late}')
  avi_start = path.endswith('.avi') and audio_late  # AVI's muxer drops an audio -itsoffset.
  offset = lambda late: ['-itsoffset', f'{late}'] if late else []
  _run([*offset(video_late), '-f', 'lavfi', '-i', video, *offset(0 if avi_start else audio_late),
        '-f', 'lavfi', '-i', audio, *_VIDEO_CODECS[os.path.splitext(path)[1]], path])
  if avi_start:
    _set_avi_audio_start(path, audio_late)
  return path


def _set_avi_audio_start(path, seconds):
  """Writes an AVI audio stream header's start (dwStart, in its units of scale / rate s)."""
  with open(path, 'r+b') as f:
    header = f.read().index(b'auds')  # Its strh: type, handler, 16 bytes, scale, rate, start.
    f.seek(header + 20)
    scale, rate = struct.unpack('<2I', f.read(8))
    f.write(struct.pack('<I', round(seconds * rate / scale)))


def truncate(path, share=0.5):
  """Cuts a file to `share` of its bytes (a download that stopped)."""
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:int(len(data) * share)])
  return path


def write_empty(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  open(path, 'wb').close()
  return path


def write_garbage(path, size=2000, seed=0):
  """Bytes that no decoder reads."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes())
  return path
