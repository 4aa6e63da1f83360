#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from testdata/ and policies/ (generated, not
committed). Each target reads a selector/cut-count prefix before its
payload (see fuzz_targets/common.rs); seeds carry a prefix that makes the
target read them as the fixture they are."""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"
T = ROOT / "testdata"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def texts(step):
    """Every `step`-th text of the detector corpus."""
    lines = (T / "detect" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[::step]]


def main():
    responses = {
        "openai_chat.json": 0,
        "openai_responses.json": 1,
        "anthropic_messages.json": 2,
        "gemini.json": 3,
        "bedrock_converse.json": 4,
    }
    policies = sorted((ROOT / "policies").glob("*.json"))
    for f in sorted((T / "responses").glob("*.json")) + [T / "streams" / "gemini_array.json"] + policies:
        put("json_walk", f.name, b"\x27" + f.read_bytes())  # depth 40
    for name, sel in responses.items():
        put("response_buffered", name, bytes([sel]) + (T / "responses" / name).read_bytes())
    for f in policies:
        put("policy", f.name, b"\x01" + f.read_bytes())

    # Stream selectors: the index into STREAMS in response_stream.rs; no cuts.
    streams = {
        "openai_chat.sse": 0,
        "openai_chat_crlf.sse": 0,
        "openai_responses.sse": 1,
        "anthropic_messages.sse": 2,
        "gemini_alt_sse.sse": 3,
        "gemini_array.json": 4,
    }
    for name, sel in streams.items():
        body = (T / "streams" / name).read_bytes()
        put("response_stream", name, bytes([sel, 0]) + body)
        put("response_stream", "cut-" + name, bytes([sel, 3, 40, 128, 200]) + body)
        if name.endswith(".sse"):
            put("sse", name, b"\x00\x02\x55\xaa" + body)
    put("json_array", "gemini_array.json", b"\x00\x02\x55\xaa" + (T / "streams" / "gemini_array.json").read_bytes())
    events = [json.loads(line) for line in (T / "streams" / "bedrock_converse.events.jsonl").read_text().splitlines()]
    lines = "\n".join(e["event"] + "\t" + json.dumps(e["payload"]) for e in events).encode()
    put("response_stream", "bedrock.tsv", bytes([5, 0]) + lines)
    frames = b"\x00".join(e["event"][:8].encode() + json.dumps(e["payload"]).encode() for e in events)
    put("eventstream", "bedrock.frames", b"\x80\x02\x55\xaa" + frames)

    for i, text in enumerate(texts(20)):
        put("detectors", f"corpus-{i:04}", text.encode())
    for i, text in enumerate(texts(100)):
        chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], "stream": i % 2 == 0}
        anthropic = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
        put("request", f"chat-{i:03}", b"\x00" + json.dumps(chat).encode())
        put("request", f"anthropic-{i:03}", b"\x01" + json.dumps(anthropic).encode())
        put("request", f"text-{i:03}", b"\x05" + text.encode())
    # Injection: selector byte 0 (raw text), 3 (base64), 6 (tag characters).
    for name in ("attacks.txt", "benign.txt"):
        lines = (T / "injection" / name).read_text(encoding="utf-8").splitlines()
        samples = [line.removeprefix("indirect: ") for line in lines if line.strip() and not line.startswith("#")]
        for i, text in enumerate(samples[::3]):
            sel = (0, 3, 6)[i % 3] if name == "attacks.txt" else 0
            put("injection", f"{name[:-4]}-{i:03}", bytes([sel]) + text.encode())
    n = sum(1 for _ in OUT.rglob("*") if _.is_file())
    print(f"seeded {n} files under {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
