"""Writes the seed corpus of fuzz_wire.c into tests/c/corpus/wire (run from anywhere).

Each file is one fuzz input: an options byte (bit 0: re-sign, bit 1: fix nframes/paylen),
then frames as [uint16 LE length][bytes], the header frame first. Files named ok-* must
parse with the fixed key, bad-* must be rejected (fuzz_wire's replay checks this)."""

import hashlib
import hmac
import os
import struct

KEY = b"5f3c9a1e0b7d4c2a8e6f1d3b5a7c9e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c0d"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "wire")
MAGIC = 0x52415043
TARGETED, HUB, STDOUT = 0x8, 0x4, 0x1


def header(type_, frames, flags=0, target=-1, engine=-1, status=0, nframes=None,
           paylen=None, version=1, magic=MAGIC, seq=1):
    msg_id = struct.pack("<QQ", 0x636F72707573, seq)
    parent = struct.pack("<QQ", 0x706172656E74, seq) if type_ >= 20 else bytes(16)
    return struct.pack(
        "<IBBHIiii16s16sQQQ", magic, version, type_, flags,
        len(frames) if nframes is None else nframes, target, engine, status,
        msg_id, parent, 1700000000000000000, 1700000000000001000,
        sum(map(len, frames)) if paylen is None else paylen)


def sign(hdr80, frames, key=KEY):
    mac = hmac.new(key, hdr80, hashlib.sha256)
    for f in frames:
        mac.update(f)
    return hdr80 + mac.digest()


def encode(parts, opts=0):
    out = bytes([opts])
    for p in parts:
        out += struct.pack("<H", len(p)) + p
    return out


def targets(*ids):
    return struct.pack("<%di" % len(ids), *ids)


def seeds():
    apply_frames = [targets(0, 1), b"\x80\x05pickled-call.", b"B" * 300]
    valid = {
        "connect": (4, [], 0),
        "register": (1, [b"pid=4242\nhost=node-1\n"], 0),
        "heartbeat": (3, [], 0),
        "connect-reply": (5, [targets(0, 1, 2), b"0 10 h\n1 11 h\n2 12 h\n"], 0),
        "execute": (10, [targets(3), b"x = 1\nprint(x)\n"], TARGETED),
        "apply-oob": (11, apply_frames, TARGETED),
        "reply": (20, [b"\x80\x05result."], 0),
        "stream": (21, [b"hello\n"], STDOUT),
        "error": (22, [b"engine 3 died (heartbeat silent for 3.0 s)"], 0),
        "interrupt": (30, [targets(0), bytes(16)], TARGETED),
        "shutdown-hub": (31, [], HUB),
        "engine-event": (40, [], 0),
    }
    out = {}
    for seq, (name, (t, frames, flags)) in enumerate(sorted(valid.items()), 1):
        hdr = sign(header(t, frames, flags=flags, seq=seq), frames)
        out["ok-" + name] = encode([hdr] + frames)
    # Load-balanced tasks (docs/protocol.md, "Load-balanced tasks"); numbered apart from the
    # seeds above so adding them left those files unchanged.
    task_spec = struct.pack("<IiIHHIII", 1, 2, 5000, 3, 0, 2, 1, 0) + targets(0, 1) + \
        struct.pack("<QQ", 0x6166746572, 1)
    tasks = {
        "task": (12, [task_spec, b"\x80\x05pickled-call.", b"C" * 64], 0),
        "task-plain": (12, [struct.pack("<IiIHHIII", 1, 0, 0, 0, 0, 0, 0, 0), b"call"], 0),
        "abort": (34, [struct.pack("<QQQQ", 1, 2, 3, 4)], 0),
        "query": (35, [b"task_status", struct.pack("<QQ", 5, 6)], 0),
        "query-reply": (36, [b'{"engines": {"0": {"completed": 1, "queue": 0, "tasks": 1}}, '
                             b'"unassigned": 0}'], 0),
        "reply-unmet": (20, [b"\x80\x05unmet."], 0),
    }
    for seq, (name, (t, frames, flags)) in enumerate(sorted(tasks.items()), 100):
        status = 2 if name == "reply-unmet" else 0
        hdr = sign(header(t, frames, flags=flags, status=status, seq=seq), frames)
        out["ok-" + name] = encode([hdr] + frames)
    # A message whose tag is wrong in the file but recomputed by the harness (option bit 0).
    frames = [targets(0), b"code"]
    hdr = header(10, frames, flags=TARGETED) + bytes(32)
    out["ok-resigned"] = encode([hdr] + frames, opts=1)
    # Malformed shapes.
    good_frames = [targets(0, 1), b"payload"]
    good = sign(header(11, good_frames, flags=TARGETED), good_frames)
    out["bad-empty"] = b""
    out["bad-no-frames"] = bytes([0])
    out["bad-short-header"] = encode([good[:50]] + good_frames)
    out["bad-long-header"] = encode([good + b"x"] + good_frames)
    out["bad-magic"] = encode([sign(header(11, good_frames, flags=TARGETED, magic=0xDEADBEEF),
                                    good_frames)] + good_frames)
    out["bad-version"] = encode([sign(header(11, good_frames, flags=TARGETED, version=9),
                                      good_frames)] + good_frames)
    out["bad-type"] = encode([sign(header(200, good_frames), good_frames)] + good_frames)
    out["bad-frame-missing"] = encode([good] + good_frames[:1])
    out["bad-frame-extra"] = encode([good] + good_frames + [b"extra"])
    out["bad-nframes-huge"] = encode(
        [sign(header(11, good_frames, nframes=5000), good_frames)] + good_frames)
    out["bad-paylen"] = encode(
        [sign(header(11, good_frames, paylen=2 ** 62), good_frames)] + good_frames)
    out["bad-sig-zero"] = encode([good[:80] + bytes(32)] + good_frames)
    out["bad-sig-other-key"] = encode([sign(good[:80], good_frames, key=b"other")] + good_frames)
    out["bad-payload-flipped"] = encode([good] + [good_frames[0], b"pAyload"])
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds()), OUT))


if __name__ == "__main__":
    main()
