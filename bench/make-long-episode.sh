#!/usr/bin/env bash
# A long two-voice episode for the transcription benchmark: MINUTES of espeak-ng speech, the
# two voices taking turns. By default it cycles through the podcast script below in a
# different order each round; with SCRIPT (a text file, a sentence per line) it reads that
# file's sentences in order, so nothing repeats until the file runs out.
# Writes the spoken text to OUT.txt and who spoke when to OUT.turns ("start end voice" in
# seconds, a line per turn) beside OUT.
# Usage: bench/make-long-episode.sh MINUTES OUT.m4a [VOICE1 VOICE2 [WORDS_PER_MINUTE [SCRIPT]]]
# (default: en-us and en-us+Annie at 160 words a minute).
set -euo pipefail
minutes=${1:?minutes}
out=${2:?out.m4a}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sentences=(
  "Welcome back to the show, where we talk about the tools behind independent podcasts."
  "Today my guest runs a weekly interview show with a small team and a smaller budget."
  "Let us start with the recording itself, because everything else depends on it."
  "We record on two microphones and send the files to a shared folder after each session."
  "Then the long part begins: editing, loudness, transcripts, show notes and the rest."
  "How long does that take you on a normal week, from recording to publishing?"
  "About two days, and most of that time goes into writing rather than audio work."
  "The transcript alone used to cost us money every week, and it was often late."
  "Now we run speech recognition on our own machine, and it finishes within the hour."
  "What about the quality, especially for names and technical words?"
  "Names are still hard, so we keep a short list of corrections for each guest."
  "The chapters and the summary come from a language model that reads the transcript."
  "Sometimes the model is busy and refuses a request, so every prompt must retry on its own."
  "One failed prompt should never stop the others from finishing their work."
  "And nothing expensive should ever run twice, because that is where the bill grows."
  "Clips are the part our listeners share the most, so we cut three of them each week."
  "Each clip needs a hook, a clean start and end, and subtitles for people without sound."
  "We also post a short trailer before the episode goes out on Monday morning."
  "Do you publish the transcript next to the audio, or only use it for writing?"
  "Both. The transcript helps search engines and readers who prefer text."
  "Let us talk about mistakes, because every show has a story about a lost episode."
  "Ours was a full hour recorded with the wrong microphone selected."
  "Since then we check the levels twice before we press record."
  "What advice would you give to someone starting a show this year?"
  "Keep the workflow boring and automatic, and spend your energy on the conversation."
  "Thank you for joining us, and thanks to everyone listening this week."
)
# Two voices that differ in timbre (en-us and en-gb are one voice with two accents).
voices=("${3:-en-us}" "${4:-en-us+Annie}")
speed=${5:-160}
script=${6:-}
in_order=false
if [ -n "$script" ]; then
  mapfile -t sentences < <(grep -v '^[[:space:]]*$' "$script")
  [ ${#sentences[@]} -gt 0 ] || { echo "make-long-episode: $script has no sentences" >&2; exit 2; }
  in_order=true
fi
: > "$tmp/list.txt"
: > "$out.txt"
: > "$out.turns"
seconds=0
at=0
round=0
i=0
while [ "$seconds" -lt $((minutes * 60)) ]; do
  n=${#sentences[@]}
  for k in $(seq 0 $((n - 1))); do
    if $in_order; then
      idx=$k
    else
      idx=$(( (k * 7 + round * 5) % n ))
    fi
    text=${sentences[$idx]}
    voice=${voices[$(( (k + round) % 2 ))]}
    espeak-ng -v "$voice" -s "$speed" -w "$tmp/$i.wav" "$text"
    printf "file '%s'\n" "$tmp/$i.wav" >> "$tmp/list.txt"
    printf "%s " "$text" >> "$out.txt"
    len=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$tmp/$i.wav")
    end=$(python3 -c "print(round($at + $len, 3))")
    printf "%s %s %s\n" "$at" "$end" "$voice" >> "$out.turns"
    at=$end
    seconds=$(python3 -c "print(int($end + 0.5))")
    i=$((i + 1))
    [ "$seconds" -ge $((minutes * 60)) ] && break
  done
  round=$((round + 1))
done
ffmpeg -loglevel error -y -f concat -safe 0 -i "$tmp/list.txt" -c:a aac -b:a 96k "$out"
echo "$out"
