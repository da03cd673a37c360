#!/usr/bin/env python3
"""Seeds for the worker_frames and job_header targets: well-formed postcard
frames written by hand (the encoders are private to the crate).

    python3 fuzz/seed_frames.py   # writes fuzz/corpus/{worker_frames,job_header}/
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def bts(b):
    return varint(len(b)) + b


def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def report(path, kind, size, outcome):
    return bts(path) + kind + varint(size) + outcome


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# WorkerMsg: Warm=0, Confined=1, Reports=2, Corrections=3, Done=4, Failed=5.
# EntryKind: File=0 .. BlockDevice=6, Other(u8)=7. Outcome: Written=0,
# Skipped(reason)=1, Rejected(reason)=2, Failed(String)=3.
reports = [
    report(b"a/b.txt", b"\x00", 5, b"\x00"),
    report(b"dir", b"\x01", 0, b"\x00"),
    report(b"dev/null", b"\x05", 0, b"\x01\x00"),
    report(b"../x", b"\x00", 3, b"\x02\x00"),
    report(b"weird", b"\x07\x56", 0, b"\x01\x03\x56"),
    report(b"h", b"\x03", 0, b"\x03" + bts(b"hard link to itself\x1b[31m")),
]
batch = frame(b"\x02" + varint(len(reports)) + b"".join(reports))
corrections = frame(b"\x03" + varint(1) + bts(b"dir") + bts(b"setting directory metadata: EPERM"))
done = frame(b"\x04" + varint(10240) + varint(300) + b"\x02")
errors = [
    b"\x05\x00" + bts(b"mount failed"),
    b"\x05\x01",
    b"\x05\x02" + varint(1536) + bts(b"bad header"),
    b"\x05\x03" + bts(b"x") + bts(b"uid 5 outside"),
    b"\x05\x04" + varint(0) + varint(10) + bts(b"e"),  # Limit::MaxEntries
    b"\x05\x05" + bts(b"f") + bts(b"ENOSPC"),
    b"\x05\x06" + bts(b"internal"),
]
write("worker_frames", "warm", frame(b"\x00"))
write("worker_frames", "session", frame(b"\x00") + frame(b"\x01") + batch + corrections + done)
for i, e in enumerate(errors):
    write("worker_frames", f"failed{i}", frame(b"\x00") + frame(b"\x01") + batch + frame(e))

# JobHeader { dest, options }: Options is preserve_owners, allow_devices,
# allow_fifos, mode (Safe=0, Exact=1), xattrs (None=0, User=1, All=2),
# preserve_mtime, compression (Auto=0 ..), id_map {uids, gids}, limits (7 u64).
limits = b"".join(varint(x) for x in [1000000, 8 << 30, 32 << 30, 1 << 20, 4095, 256, 1000])


def options(full, id_map=b"\x00\x00"):
    flags = b"\x01\x01\x01\x01\x02\x01\x00" if full else b"\x00\x00\x01\x00\x01\x01\x00"
    return flags + id_map + limits


def header(dest, opts):
    payload = bts(dest) + opts
    return b"STR1" + struct.pack("<I", len(payload)) + payload


write("job_header", "default", header(b"/srv/site", options(False)))
write("job_header", "full", header(b"/srv/site", options(True)))
rng = varint(1) + varint(0) + varint(100000) + varint(65536)
write("job_header", "idmap", header(b"/tmp/x", options(True, rng + rng)))
write("job_header", "empty", b"STR1\x00\x00\x00\x00")
