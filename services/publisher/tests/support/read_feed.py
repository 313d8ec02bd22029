"""Reads a podcast feed with feedparser (RSS 2.0 + iTunes) and the standard library's XML
parser (the Podcasting 2.0 tags) and prints what a podcast app would take from it, as JSON.
Used by the publisher's tests as a reader independent of the `rss` crate that wrote it."""
import json
import sys
import xml.etree.ElementTree as ET

import feedparser

PODCAST = "{https://podcastindex.org/namespace/1.0}"
path = sys.argv[1]
parsed = feedparser.parse(path)
tree = ET.parse(path)
channel = tree.getroot().find("channel")
out = {
    "bozo": bool(parsed.bozo),
    "bozo_exception": str(parsed.get("bozo_exception", "")),
    "version": parsed.version,
    "title": parsed.feed.get("title"),
    "link": parsed.feed.get("link"),
    "language": parsed.feed.get("language"),
    "author": parsed.feed.get("author"),
    "image": parsed.feed.get("image", {}).get("href"),
    "category": [t.get("term") for t in parsed.feed.get("tags", [])],
    "persons": [[p.get("role"), p.text] for p in channel.findall(PODCAST + "person")],
    "items": [],
}
for entry, item in zip(parsed.entries, channel.findall("item")):
    out["items"].append({
        "title": entry.get("title"),
        "id": entry.get("id"),
        "published": list(entry.published_parsed[:6]) if entry.get("published_parsed") else None,
        "description": entry.get("summary"),
        "enclosures": [[e.get("href"), e.get("length"), e.get("type")] for e in entry.get("enclosures", [])],
        "duration": entry.get("itunes_duration"),
        "episode": entry.get("itunes_episode"),
        "transcripts": [dict(t.attrib) for t in item.findall(PODCAST + "transcript")],
        "chapters": [dict(c.attrib) for c in item.findall(PODCAST + "chapters")],
        "soundbites": [[float(s.get("startTime")), float(s.get("duration")), s.text] for s in item.findall(PODCAST + "soundbite")],
        "persons": [[p.get("role"), p.text] for p in item.findall(PODCAST + "person")],
    })
print(json.dumps(out))
