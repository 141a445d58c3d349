#!/usr/bin/env python3
"""Independent fleetcast verifier, written from docs/SPEC.md and testdata/vectors/README.md only.

Usage: python3 testdata/interop/verify.py testdata/vectors

Runs every vector directory that has a manifest.json, the key-file vector (keys/), and the
known answers of SPEC sections 2 (PAE) and 5 (gear table, masks, FastCDC vectors 1 and 2).
Needs Python 3.11 and the `cryptography` package (Debian: python3-cryptography).
See README.md next to this file for the reading of the spec that this code takes.
"""
import base64
import hashlib
import json
import os
import re
import struct
import sys

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEYID_LABEL = b"fleetcast-keyid-v1"
ROOT_TYPE = "application/vnd.fleetcast.root.v1+json"
MANIFEST_TYPE = "application/vnd.fleetcast.manifest.v1+json"
MAX_KEY_FILE, MAX_ENVELOPE, MAX_ROOT = 4096, 24 << 20, 64 << 10
MAX_SIGNATURES, MAX_ROOT_KEYS, MAX_ROTATIONS = 32, 32, 1024
MAX_CHUNKS, MAX_CHUNK_SIZE, MAX_ARGV = 131072, 64 << 20, 64
SIG_OUTCOMES = ("bad_signature", "unknown_key", "threshold")


class Fail(Exception):
    """A verification failure; `outcome` is one of the vectors README's outcome names."""

    def __init__(self, outcome, reason):
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


# ---------------------------------------------------------------- strict JSON, base64, time

def _no_dup_keys(pairs):
    seen = set()
    for k, _ in pairs:
        folded = k.encode("utf-8", "surrogatepass").lower()  # bytes.lower(): ASCII only
        if folded in seen:
            raise Fail("malformed", f"repeated key {k!r} (compared ignoring ASCII case)")
        seen.add(folded)
    return dict(pairs)


def _no_constant(name):
    raise Fail("malformed", f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_dup_keys, parse_constant=_no_constant)
_WS = " \t\r\n"


def strict_json(data):
    """Exactly one JSON value, UTF-8, no repeated keys, nothing but white space after it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Fail("malformed", f"not UTF-8: {e}")
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise Fail("malformed", f"bad JSON: {e}")
    if text[end:].strip(_WS):
        raise Fail("malformed", f"trailing data after the JSON value at offset {end}")
    return value


def fields(v, what, allowed):
    """Check that v is an object with only the allowed fields; missing fields read as None."""
    if not isinstance(v, dict):
        raise Fail("malformed", f"{what}: not a JSON object")
    unknown = sorted(set(v) - set(allowed))
    if unknown:
        raise Fail("malformed", f"{what}: unknown field(s) {unknown}")
    return [v.get(name) for name in allowed]


def typed(v, kind, what, default):
    """A present field must have the JSON type; an absent one reads as the zero value."""
    if v is None:
        return default
    ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool))
    if not ok:
        raise Fail("malformed", f"{what}: want {kind.__name__}, got {type(v).__name__}")
    if kind is int and not -(1 << 63) <= v < (1 << 64):
        raise Fail("malformed", f"{what}: integer out of 64-bit range")
    return v


_B64_STD = re.compile(r"[A-Za-z0-9+/]*")
_B64_URL = re.compile(r"[A-Za-z0-9_-]*")


def b64any(s, what):
    """Standard or URL-safe alphabet (not mixed), padded or not (DSSE)."""
    body = s.rstrip("=")
    pad = len(s) - len(body)
    if not (_B64_STD.fullmatch(body) or _B64_URL.fullmatch(body)) or pad > 2 \
            or len(body) % 4 == 1 or (pad and len(s) % 4):
        raise Fail("malformed", f"{what}: not base64")
    body = body.replace("-", "+").replace("_", "/")
    return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)


_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z")


def _days_from_civil(y, m, d):  # proleptic Gregorian, works for year 0 (H. Hinnant)
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_time(s, what, outcome="malformed"):
    """RFC 3339 in UTC ('Z'), years 0000-9999; returns nanoseconds since the Unix epoch."""
    m = _TIME.fullmatch(s) if isinstance(s, str) else None
    if not m:
        raise Fail(outcome, f"{what}: not an RFC 3339 UTC time: {s!r}")
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
    mdays = [31, 29 if (y % 4 == 0 and (y % 100 or y % 400 == 0)) else 28, 31, 30, 31, 30,
             31, 31, 30, 31, 30, 31]
    if not (1 <= mo <= 12 and 1 <= d <= mdays[mo - 1] and hh < 24 and mi < 60 and ss < 60):
        raise Fail(outcome, f"{what}: no such time: {s!r}")
    frac = int((m.group(7) or ".")[1:].ljust(9, "0"))
    return ((_days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss) * 10**9) + frac


# ---------------------------------------------------------------- keys and envelopes (1, 2)

def keyid(pub):
    return hashlib.sha256(KEYID_LABEL + b"\x00" + pub).digest()[:8].hex()


def pae(ptype, body):
    t = ptype.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def read_limited(path, limit):
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Fail("malformed", f"{path}: larger than {limit} bytes")
    return data


def parse_envelope(data):
    ptype, payload, sigs = fields(strict_json(data), "envelope", ("payloadType", "payload", "signatures"))
    ptype = typed(ptype, str, "payloadType", "")
    if not 1 <= len(ptype.encode("utf-8")) <= 256:
        raise Fail("malformed", "payloadType must be 1 to 256 bytes")
    payload = b64any(typed(payload, str, "payload", ""), "payload")
    sigs = typed(sigs, list, "signatures", [])
    if len(sigs) > MAX_SIGNATURES:
        raise Fail("malformed", f"{len(sigs)} signatures, at most {MAX_SIGNATURES}")
    out = []
    for i, s in enumerate(sigs):
        kid, sig = fields(s, f"signatures[{i}]", ("keyid", "sig"))
        kid = typed(kid, str, f"signatures[{i}].keyid", "")
        if not kid:
            raise Fail("malformed", f"signatures[{i}]: keyid is required")
        out.append((kid, b64any(typed(sig, str, f"signatures[{i}].sig", ""), f"signatures[{i}].sig")))
    return ptype, payload, out


def verify_threshold(env, want_type, keys, k):
    """Section 2 steps 1-3; keys maps key id -> 32-byte public key."""
    ptype, payload, sigs = env
    if ptype != want_type:
        raise Fail("payload_type", f"payload type {ptype!r}, want {want_type!r}")
    msg = pae(ptype, payload)
    counted, bad, unknown = set(), 0, 0
    for kid, sig in sigs:
        pub = keys.get(kid)
        if pub is None:
            unknown += 1
            continue
        if kid in counted:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
            counted.add(kid)
        except (InvalidSignature, ValueError):
            bad += 1
    if len(counted) >= k:
        return
    why = f"{len(counted)} of {k} distinct valid signatures"
    if bad:
        raise Fail("bad_signature", f"{bad} signature(s) by trusted keys do not verify; {why}")
    if unknown and unknown == len(sigs):
        raise Fail("unknown_key", f"signed only by keys not in the root; {why}")
    raise Fail("threshold", why)


# ---------------------------------------------------------------- roots (3)

class Root:
    def __init__(self, payload):
        v = strict_json(payload)
        version, expires, threshold, keys = fields(v, "root", ("version", "expires", "threshold", "keys"))
        self.version = typed(version, int, "root version", 0)
        self.expires = parse_time(typed(expires, str, "root expires", ""), "root expires")
        self.threshold = typed(threshold, int, "root threshold", 0)
        self.keys = {}
        for i, kv in enumerate(typed(keys, list, "root keys", [])):
            kid, b64 = fields(kv, f"root keys[{i}]", ("keyid", "ed25519"))
            pub = b64any(typed(b64, str, f"root keys[{i}].ed25519", ""), f"root keys[{i}].ed25519")
            if len(pub) != 32:
                raise Fail("malformed", f"root keys[{i}]: public key is {len(pub)} bytes")
            if typed(kid, str, f"root keys[{i}].keyid", "") != keyid(pub):
                raise Fail("malformed", f"root keys[{i}]: keyid {kid!r} does not match the key")
            if kid in self.keys:
                raise Fail("malformed", f"root keys[{i}]: key {kid} listed twice")
            self.keys[kid] = pub
        if self.version < 1:
            raise Fail("malformed", "root version must be >= 1")
        if not 1 <= len(self.keys) <= MAX_ROOT_KEYS:
            raise Fail("malformed", f"root has {len(self.keys)} keys, want 1 to {MAX_ROOT_KEYS}")
        if not 1 <= self.threshold <= len(self.keys):
            raise Fail("malformed", f"root threshold {self.threshold} not in 1..{len(self.keys)}")


def read_root(path):
    env = parse_envelope(read_limited(path, MAX_ROOT))
    if env[0] != ROOT_TYPE:
        raise Fail("payload_type", f"{path}: payload type {env[0]!r}")
    return env, Root(env[1])  # decoded to learn the keys; signatures checked by the caller


def pinned_root(path):
    env, root = read_root(path)
    verify_threshold(env, ROOT_TYPE, root.keys, root.threshold)
    return root


def follow_chain(root, roots_dir):
    for _ in range(MAX_ROTATIONS):
        path = os.path.join(roots_dir, f"{root.version + 1}.root.json")
        if not os.path.isfile(path):
            break
        env, new = read_root(path)
        for who, r in (("old", root), ("its own", new)):
            try:
                verify_threshold(env, ROOT_TYPE, r.keys, r.threshold)
            except Fail as e:
                if e.outcome not in SIG_OUTCOMES:
                    raise
                raise Fail("rotation", f"{path}: not signed by a threshold of {who} keys ({e.outcome}: {e.reason})")
        if new.version != root.version + 1:
            raise Fail("rotation", f"{path}: holds version {new.version}, want {root.version + 1}")
        root = new
    return root


# ---------------------------------------------------------------- manifests (4)

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}")
HEX64_RE = re.compile(r"[0-9a-f]{64}")
MODE_RE = re.compile(r"0[0-7]{3,4}")
MANIFEST_FIELDS = ("product", "channel", "sequence", "version", "created", "expires",
                   "artifact", "chunking", "chunks", "install")


def decode_manifest(payload):
    """Strict decode (failures: malformed) into plain values; rules come in validate()."""
    m = dict(zip(MANIFEST_FIELDS, fields(strict_json(payload), "manifest", MANIFEST_FIELDS)))
    for f in ("product", "channel", "version", "created", "expires"):
        m[f] = typed(m[f], str, f, "")
    m["sequence"] = typed(m["sequence"], int, "sequence", 0)
    a = dict(zip(("name", "size", "sha256"), fields(typed(m["artifact"], dict, "artifact", {}),
                                                    "artifact", ("name", "size", "sha256"))))
    m["artifact"] = {"name": typed(a["name"], str, "artifact.name", ""),
                     "size": typed(a["size"], int, "artifact.size", 0),
                     "sha256": typed(a["sha256"], str, "artifact.sha256", "")}
    c = fields(typed(m["chunking"], dict, "chunking", {}), "chunking", ("algorithm", "min", "avg", "max"))
    m["chunking"] = {"algorithm": typed(c[0], str, "chunking.algorithm", ""),
                     "min": typed(c[1], int, "chunking.min", 0),
                     "avg": typed(c[2], int, "chunking.avg", 0),
                     "max": typed(c[3], int, "chunking.max", 0)}
    chunks = []
    for i, ch in enumerate(typed(m["chunks"], list, "chunks", [])):
        h, size = fields(ch, f"chunks[{i}]", ("sha256", "size"))
        chunks.append((typed(h, str, f"chunks[{i}].sha256", ""), typed(size, int, f"chunks[{i}].size", 0)))
    m["chunks"] = chunks
    names = ("installer", "target", "mode", "command", "health_check", "rollback_command")
    ins = dict(zip(names, fields(typed(m["install"], dict, "install", {}), "install", names)))
    for f in names[:3]:
        ins[f] = typed(ins[f], str, f"install.{f}", "")
    for f in names[3:]:
        ins[f] = [typed(x, str, f"install.{f}[]", "") for x in typed(ins[f], list, f"install.{f}", [])]
    m["install"] = ins
    return m


def validate(m):
    """The rules table of section 4; every failure is `invalid`. Returns the expiry time."""
    def bad(msg):
        raise Fail("invalid", msg)
    for f in ("product", "channel"):
        if not NAME_RE.fullmatch(m[f]) or m[f] in ("roots", "chunks"):
            bad(f"{f} {m[f]!r} is not a valid name")
    if m["sequence"] < 1:
        bad("sequence must be >= 1")
    if not VERSION_RE.fullmatch(m["version"]):
        bad(f"version {m['version']!r} is not valid")
    if not m["created"] or not m["expires"]:
        bad("created and expires must both be set")
    created = parse_time(m["created"], "created", "invalid")
    expires = parse_time(m["expires"], "expires", "invalid")
    if expires <= created:
        bad("expires is not after created")
    a, c, ins = m["artifact"], m["chunking"], m["install"]
    if not VERSION_RE.fullmatch(a["name"]):
        bad(f"artifact.name {a['name']!r} is not a file name")
    if a["size"] < 0 or not HEX64_RE.fullmatch(a["sha256"]):
        bad("artifact.size or artifact.sha256 is not valid")
    if not c["algorithm"]:
        bad("chunking.algorithm is not named")
    if not 0 < c["max"] <= MAX_CHUNK_SIZE:
        bad(f"chunking.max {c['max']} not in 1..{MAX_CHUNK_SIZE}")
    if len(m["chunks"]) > MAX_CHUNKS:
        bad(f"{len(m['chunks'])} chunks, at most {MAX_CHUNKS}")
    for i, (h, size) in enumerate(m["chunks"]):
        if not HEX64_RE.fullmatch(h):
            bad(f"chunks[{i}].sha256 is not 64 lowercase hex digits")
        if not 1 <= size <= c["max"]:
            bad(f"chunks[{i}].size {size} not in 1..{c['max']}")
    total = sum(size for _, size in m["chunks"])
    if total != a["size"]:
        bad(f"chunk sizes add up to {total}, artifact.size is {a['size']}")
    need = {"file": "target", "archive": "target", "command": "command"}.get(ins["installer"])
    if need is None:
        bad(f"install.installer {ins['installer']!r} is not file, archive or command")
    if not ins[need]:
        bad(f"installer {ins['installer']} needs install.{need}")
    if ins["mode"] and not MODE_RE.fullmatch(ins["mode"]):
        bad(f"install.mode {ins['mode']!r} is not octal 0NNN or 0NNNN")
    for f in ("command", "health_check", "rollback_command"):
        if len(ins[f]) > MAX_ARGV:
            bad(f"install.{f} has {len(ins[f])} elements, at most {MAX_ARGV}")
    return expires


def verify_manifest(path, root, now):
    env = parse_envelope(read_limited(path, MAX_ENVELOPE))           # 1
    verify_threshold(env, MANIFEST_TYPE, root.keys, root.threshold)  # 2
    if root.expires < now:                                           # 3
        raise Fail("root_expired", "the root in use has expired")
    m = decode_manifest(env[1])                                      # 4
    expires = validate(m)
    if expires < now:                                                # 5
        raise Fail("expired", f"the manifest expired at {m['expires']}")
    return m


def verify_artifact(path, m):
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    for i, (h, size) in enumerate(m["chunks"]):
        piece = data[off:off + size]
        if len(piece) != size:
            raise Fail("mismatch", f"artifact ends inside chunk {i}")
        if hashlib.sha256(piece).hexdigest() != h:
            raise Fail("mismatch", f"chunk {i} digest differs")
        off += size
    if len(data) != m["artifact"]["size"] or off != len(data):
        raise Fail("mismatch", f"artifact is {len(data)} bytes, want {m['artifact']['size']}")
    if hashlib.sha256(data).hexdigest() != m["artifact"]["sha256"]:
        raise Fail("mismatch", "whole-file SHA-256 differs")


def run_vector(d):
    hdr = strict_json(open(os.path.join(d, "vector.json"), "rb").read())
    try:
        now = parse_time(hdr["now"], "now")
        root = pinned_root(os.path.join(d, "root.json"))
        root = follow_chain(root, os.path.join(d, "roots"))
        m = verify_manifest(os.path.join(d, "manifest.json"), root, now)
        if hdr.get("artifact"):
            verify_artifact(os.path.join(d, hdr["artifact"]), m)
        return hdr["expect"], "ok", ""
    except Fail as e:
        return hdr["expect"], e.outcome, e.reason


# ---------------------------------------------------------------- key files (1)

def _chacha_rounds(state, double_rounds):
    x = list(state)
    M = 0xFFFFFFFF

    def qr(a, b, c, d):
        x[a] = (x[a] + x[b]) & M; x[d] ^= x[a]; x[d] = ((x[d] << 16) | (x[d] >> 16)) & M
        x[c] = (x[c] + x[d]) & M; x[b] ^= x[c]; x[b] = ((x[b] << 12) | (x[b] >> 20)) & M
        x[a] = (x[a] + x[b]) & M; x[d] ^= x[a]; x[d] = ((x[d] << 8) | (x[d] >> 24)) & M
        x[c] = (x[c] + x[d]) & M; x[b] ^= x[c]; x[b] = ((x[b] << 7) | (x[b] >> 25)) & M
    for _ in range(double_rounds):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return x


SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)


def xchacha20poly1305_open(key, nonce, sealed, ad):
    """XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): HChaCha20 subkey, then ChaCha20-Poly1305."""
    x = _chacha_rounds(SIGMA + struct.unpack("<8I", key) + struct.unpack("<4I", nonce[:16]), 10)
    subkey = struct.pack("<8I", *(x[0:4] + x[12:16]))
    return ChaCha20Poly1305(subkey).decrypt(b"\x00" * 4 + nonce[16:], sealed, ad)


def read_public_key_file(path):
    typ, kid, b64 = fields(strict_json(read_limited(path, MAX_KEY_FILE)), "public key file",
                           ("type", "keyid", "ed25519"))
    pub = b64any(typed(b64, str, "ed25519", ""), "ed25519")
    if typ != "fleetcast-public-key-v1" or len(pub) != 32 or kid != keyid(pub):
        raise Fail("malformed", f"{path}: bad type, key or keyid")
    return pub


def read_private_key_file(path, passphrase):
    names = ("type", "keyid", "ed25519_public", "kdf", "scrypt", "aead", "nonce", "sealed", "seed")
    v = dict(zip(names, fields(strict_json(read_limited(path, MAX_KEY_FILE)), "private key file", names)))
    pub = b64any(typed(v["ed25519_public"], str, "ed25519_public", ""), "ed25519_public")
    if v["type"] != "fleetcast-private-key-v1" or len(pub) != 32 or v["keyid"] != keyid(pub):
        raise Fail("malformed", f"{path}: bad type, key or keyid")
    if (v["kdf"], v["aead"]) == ("none", "none"):
        seed = b64any(typed(v["seed"], str, "seed", ""), "seed")
    elif (v["kdf"], v["aead"]) == ("scrypt", "xchacha20poly1305"):
        salt, log_n, r, p = fields(v["scrypt"], "scrypt", ("salt", "log_n", "r", "p"))
        salt = b64any(typed(salt, str, "scrypt.salt", ""), "scrypt.salt")
        log_n, r, p = (typed(x, int, "scrypt." + n, 0) for x, n in ((log_n, "log_n"), (r, "r"), (p, "p")))
        if not (10 <= log_n <= 22 and r == 8 and p == 1 and len(salt) >= 16):
            raise Fail("malformed", f"{path}: scrypt parameters out of range")
        key = hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=1 << log_n, r=r, p=p,
                             dklen=32, maxmem=129 * r * (1 << log_n) + (1 << 20))
        nonce = b64any(typed(v["nonce"], str, "nonce", ""), "nonce")
        if len(nonce) != 24:
            raise Fail("malformed", f"{path}: nonce is not 24 bytes")
        ad = b"fleetcast-private-key-v1\n" + v["keyid"].encode() + b"\n" + pub
        try:
            seed = xchacha20poly1305_open(key, nonce, b64any(typed(v["sealed"], str, "sealed", ""), "sealed"), ad)
        except InvalidTag:
            raise Fail("wrong_passphrase", "AEAD open failed: wrong passphrase or altered file")
    else:
        raise Fail("malformed", f"{path}: unknown kdf/aead {v['kdf']}/{v['aead']}")
    if len(seed) != 32:
        raise Fail("malformed", f"{path}: seed is not 32 bytes")
    derived = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    if derived != pub:
        raise Fail("malformed", f"{path}: seed does not give ed25519_public")
    return seed, pub


def run_key_vector(d):
    """keys/: the right passphrase gives the key of encrypted.pub, the wrong one must fail."""
    hdr = strict_json(open(os.path.join(d, "vector.json"), "rb").read())
    pub = read_public_key_file(os.path.join(d, "encrypted.pub"))
    _, got = read_private_key_file(os.path.join(d, "encrypted.key"), hdr["passphrase"])
    if got != pub:
        return [("right passphrase", "ok", "decrypted a different key")]
    try:
        read_private_key_file(os.path.join(d, "encrypted.key"), hdr["wrong_passphrase"])
        return [("right passphrase", "ok", "ok"), ("wrong passphrase", hdr["expect"], "ok")]
    except Fail as e:
        return [("right passphrase", "ok", "ok"), ("wrong passphrase", hdr["expect"], e.outcome)]


# ---------------------------------------------------------------- chunking (5)

M64 = (1 << 64) - 1
GEAR = [int.from_bytes(hashlib.sha256(b"fleetcast-gear-v1" + bytes([i])).digest()[:8], "big")
        for i in range(256)]


def masks(avg):
    bits = avg.bit_length() - 1
    return (M64 << (64 - (bits + 2))) & M64, (M64 << (64 - (bits - 2))) & M64


def chunk_lengths(data, mn, avg, mx):
    """The cut rule of section 5, one byte at a time, exactly as in its pseudocode."""
    mask_s, mask_l = masks(avg)
    gear, start, out = GEAR, 0, []
    while start < len(data):
        n = len(data) - start
        length = n if n <= mn else min(n, mx)
        if n > mn:
            h = 0
            for i in range(mn, min(n, mx)):
                h = ((h << 1) + gear[data[start + i]]) & M64
                if h & (mask_s if i < avg else mask_l) == 0:
                    length = i + 1
                    break
        out.append(length)
        start += length
    return out


def chacha8rand(seed, n):
    """ChaCha8Rand (C2SP chacha8rand, NOT in SPEC.md): 4 interleaved ChaCha8 blocks per 256 bytes,
    key-only feed-forward, and after 16 blocks the last 32 bytes re-key the generator."""
    key, out = struct.unpack("<8I", seed), bytearray()
    while len(out) < n:
        words = []
        for ctr in (0, 4, 8, 12):
            blocks = []
            for j in range(4):
                x = _chacha_rounds(SIGMA + key + (ctr + j, 0, 0, 0), 4)
                blocks.append([(x[i] + key[i - 4]) & 0xFFFFFFFF if 4 <= i < 12 else x[i] for i in range(16)])
            words += [blocks[j][i] for i in range(16) for j in range(4)]
        raw = struct.pack("<256I", *words)
        out += raw[:992]
        key = struct.unpack("<8I", raw[992:])
    return bytes(out[:n])


VECTOR1 = """cc0f56269b51dc74 291632 b5ecadb5fb84bbea 90262 6be103c8b35e889f 307033 6065259c3e76e7f3 410213
04e62667cacba102 183861 fea04a23ff46838d 272322 e511747cdba169ab 138207 45982294d076eaf7 303552
3a04ee8a5c6f9bec 525106 b1a4c007038611a5 110881 88479aef25e39ddf 305254 1c296230e41d278b 403865
abe9d3bb95fe5198 474273 d79269c7001d8301 344873 a4f36e140cd5a930 198369 fd8190ed9a681c2f 368747
f60ebaaa9ebb7bc6 262713 19eda3c2cd2bfc91 296832 5270675d57f691a2 262623 042e9c70e00e1398 365411
e59e23748ca8783f 283111 554e7a41fe249670 272778 56d748d68007174e 309821 464ca8e21334a1a5 350716
c769f474b7de28a2 263144 d67033e14ba809ea 356198 150301ede1509626 294210 74f0328c2099faba 339662
6e735cef0da94a10 2939""".split()


def known_answers():
    """(name, expected, got) for the known answers of sections 2 and 5."""
    yield ("pae-example", b"DSSEv1 29 http://example.com/HelloWorld 11 hello world",
           pae("http://example.com/HelloWorld", b"hello world"))
    for i, want in ((0, 0xa6b18d38ce6763af), (1, 0x8a9c0ec203579598), (2, 0xf5dd59db45d056fc),
                    (3, 0x32d96905f783eedf), (255, 0x96e87504051d220e)):
        yield (f"gear[{i}]", hex(want), hex(GEAR[i]))
    yield ("gear-table-sha256", "bc120bc8dfc975993095b27e6f29fb84b70026c236fe5baf6acf5244fba5d4d5",
           hashlib.sha256(b"".join(g.to_bytes(8, "big") for g in GEAR)).hexdigest())
    yield ("masks-default", (0xFFFFFC0000000000, 0xFFFFC00000000000), masks(1 << 20))
    yield ("masks-256k", (0xFFFFF00000000000, 0xFFFF000000000000), masks(1 << 18))
    data = chacha8rand(b"fleetcast-chunking-test-vector-1", 8 << 20)
    yield ("chunking-vector1-input", ("9dfd50a0d264025cc4adc447d86cd0c3",
                                      "acaeb68f19e5d61053b76507371e0a1b3f82773b6bf0ac2de93cb91bb5f52101"),
           (data[:16].hex(), hashlib.sha256(data).hexdigest()))
    got, off = [], 0
    for length in chunk_lengths(data, 65536, 262144, 1048576):
        got += [hashlib.sha256(data[off:off + length]).hexdigest()[:16], str(length)]
        off += length
    yield ("chunking-vector1", VECTOR1, got)
    yield ("chunking-vector2-zeros", [1048576] * 3, chunk_lengths(bytes(3 << 20), 65536, 262144, 1048576))
    yield ("chunking-edges", [[], [5], [16384, 16384, 1]],
           [chunk_lengths(b"", 4096, 8192, 4096 * 4), chunk_lengths(b"x" * 5, 4096, 8192, 16384),
            chunk_lengths(bytes(32769), 4096, 8192, 16384)])


# ---------------------------------------------------------------- driver

def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    top, passed, failed = argv[1], 0, 0

    def report(name, got, want, reason=""):
        nonlocal passed, failed
        if got == want:
            passed += 1
            print(f"PASS {name}: {got}")
        else:
            failed += 1
            print(f"FAIL {name}: got {got}, want {want}" + (f" ({reason})" if reason else ""))

    for name in sorted(os.listdir(top)):
        d = os.path.join(top, name)
        try:
            if os.path.isfile(os.path.join(d, "manifest.json")):
                want, got, reason = run_vector(d)
                report(name, got, want, reason)
            elif os.path.isfile(os.path.join(d, "encrypted.key")):
                for sub, want, got in run_key_vector(d):
                    report(f"{name} ({sub})", got, want)
        except Exception as e:  # a crash is a failed vector, not a failed run
            report(name, f"crash {type(e).__name__}", "no crash", str(e))
    for name, want, got in known_answers():
        report(name, "ok" if got == want else "differs", "ok", f"got {got!r}, want {want!r}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
