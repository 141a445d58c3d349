#!/usr/bin/env python3
"""Independent fleetcast verifier, written from docs/SPEC.md and testdata/vectors/README.md only.

Usage: python3 testdata/interop/verify.py testdata/vectors

Runs every vector directory that has a manifest.json, the key-file vector (keys/), the known
answers of SPEC sections 2 (PAE) and 5 (gear table, masks, FastCDC vectors 1 and 2), and a set of
self-made cases (built in code below) for rules that no vector covers.
Needs Python 3.11 and the `cryptography` package, version 38 or later (Debian: python3-cryptography).
See README.md next to this file for the reading of the spec that this code takes.
"""
import base64
import hashlib
import json
import os
import re
import struct
import sys
import tempfile

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEYID_LABEL = b"fleetcast-keyid-v1"
ROOT_TYPE = "application/vnd.fleetcast.root.v1+json"
MANIFEST_TYPE = "application/vnd.fleetcast.manifest.v1+json"
MAX_KEY_FILE, MAX_ENVELOPE, MAX_ROOT = 4096, 24 << 20, 64 << 10
MAX_SIGNATURES, MAX_ROOT_KEYS, MAX_ROTATIONS = 32, 32, 1024
MAX_PAYLOAD_TYPE = MAX_KEYID = 256
MAX_CHUNKS, MAX_CHUNK_SIZE = 131072, 64 << 20
MAX_ARGS, MAX_ARG, MAX_TARGET = 64, 4096, 4096
SIG_OUTCOMES = ("bad_signature", "unknown_key", "threshold")

# SPEC section 0 "Error classes": when one refusal falls in several classes, the first listed wins.
# The steps of the verification order (SPEC 2, 3, 4) still run one after another: a later step's
# class never replaces an earlier step's refusal (a payload is not decoded before its signatures
# verify). Within one step, checks run in this order too: limits, payload type, form, rules.
CLASSES = ("too_large", "payload_type", "malformed", "rotation", "root_expired", "expired",
           "invalid", "mismatch", "bad_signature", "unknown_key", "threshold")


class Fail(Exception):
    """A refusal; `outcome` is one of the error classes of SPEC section 0 (or wrong_passphrase)."""

    def __init__(self, outcome, reason):
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


def utf8len(s):
    return len(s.encode("utf-8"))


# ---------------------------------------------------------------- strict JSON, integers (0)

def _no_dup_keys(pairs):
    seen = set()
    for k, _ in pairs:
        folded = k.encode("utf-8", "surrogatepass").lower()  # every field name is ASCII (see README 10)
        if folded in seen:
            raise Fail("malformed", f"repeated key {k!r} (compared ignoring case)")
        seen.add(folded)
    return dict(pairs)


def _no_constant(name):
    raise Fail("malformed", f"{name} is not JSON")


class _NegZero(int):
    """The JSON number -0: zero, but a sign an unsigned integer cannot have (section 0)."""


def _parse_int(text):
    return _NegZero(0) if text == "-0" else int(text)


_DECODER = json.JSONDecoder(object_pairs_hook=_no_dup_keys, parse_constant=_no_constant, parse_int=_parse_int)
_WS = " \t\r\n"


def _no_null_no_surrogate(value):
    """Section 0: no `null` anywhere; lone surrogate escapes are refused (verifiers may)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None:
            raise Fail("malformed", "null is not allowed")
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise Fail("malformed", "escaped lone surrogate in a string")


def strict_json(data):
    """Exactly one JSON value, UTF-8, no repeated keys, no null, nothing but white space after it.

    A document that fails here is not decodable at all, so it is `malformed` before any limit on
    its contents is looked at. Objects come back as dicts; since null is refused, a field that
    reads as None afterwards was absent."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Fail("malformed", f"not UTF-8: {e}")
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (json.JSONDecodeError, ValueError, RecursionError) as e:  # ValueError: huge integers
        raise Fail("malformed", f"bad JSON: {e}")
    if text[end:].strip(_WS):
        raise Fail("malformed", f"trailing data after the JSON value at offset {end}")
    _no_null_no_surrogate(value)
    return value


def obj(v, what):
    if not isinstance(v, dict):
        raise Fail("malformed", f"{what}: not a JSON object")
    return v


def fields(v, what, allowed):
    """v must be an object with only the allowed fields (exact names); absent fields read as None."""
    obj(v, what)
    unknown = sorted(set(v) - set(allowed))
    if unknown:
        raise Fail("malformed", f"{what}: unknown field(s) {unknown}")
    return [v.get(name) for name in allowed]


def typed(v, kind, what, default):
    """A present field must have the JSON type; an absent one (None) reads as the zero value."""
    if v is None:
        return default
    if not isinstance(v, kind) or isinstance(v, bool):
        raise Fail("malformed", f"{what}: want {kind.__name__}, got {type(v).__name__}")
    return v


def integer(v, what, unsigned=False):
    """A JSON number without fraction or exponent, in uint64 or int64 range; absent reads as 0.

    Python's json gives int only for numbers without '.', 'e' or 'E', so 1.0 and 1e3 arrive here
    as float and are refused by typed()."""
    v = typed(v, int, what, 0)
    if unsigned and isinstance(v, _NegZero):
        raise Fail("malformed", f"{what}: -0 is not an unsigned integer")
    lo, hi = (0, 1 << 64) if unsigned else (-(1 << 63), 1 << 63)
    if not lo <= v < hi:
        raise Fail("malformed", f"{what}: {v} out of {'uint64' if unsigned else 'int64'} range")
    return v


def string(v, what):
    return typed(v, str, what, "")


def hex64(v, what):
    """Section 4: sha256 fields are 64 lowercase hex digits; anything else is `malformed`."""
    s = string(v, what)
    if not _HEX64.fullmatch(s):
        raise Fail("malformed", f"{what}: not 64 lowercase hex digits")
    return s


_HEX64 = re.compile(r"[0-9a-f]{64}")


# ---------------------------------------------------------------- base64 (0)

_B64_STD = re.compile(r"[A-Za-z0-9+/]*")
_B64_URL = re.compile(r"[A-Za-z0-9_-]*")
_B64_STRICT = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64_envelope(s, what):
    """Envelope payload and sig: standard or URL-safe (one per string), padded or not, no white
    space. Non-zero trailing bits are accepted (the spec asks for canonical bits only outside
    envelopes)."""
    body = s.rstrip("=")
    pad = len(s) - len(body)
    if not (_B64_STD.fullmatch(body) or _B64_URL.fullmatch(body)) or pad > 2 \
            or len(body) % 4 == 1 or (pad and len(s) % 4):
        raise Fail("malformed", f"{what}: not base64")
    body = body.replace("-", "+").replace("_", "/")
    return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)


def b64_strict(s, what):
    """Key files and root keys: standard alphabet, padded, canonical trailing bits, no white space."""
    if not _B64_STRICT.fullmatch(s) or len(s) % 4:
        raise Fail("malformed", f"{what}: not standard padded base64")
    raw = base64.b64decode(s, validate=True)
    if base64.b64encode(raw).decode("ascii") != s:
        raise Fail("malformed", f"{what}: base64 with non-zero trailing bits")
    return raw


# ---------------------------------------------------------------- times (0)

_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
                   r"(Z|([+-])([0-9]{2}):([0-9]{2}))")
NS = 10 ** 9


def _days_from_civil(y, m, d):  # proleptic Gregorian, works for year 0 (H. Hinnant)
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_time(s, what):
    """An RFC 3339 date-time with any offset and optional fractional seconds (truncated to
    nanoseconds); returns the instant in nanoseconds since the Unix epoch. Anything that does not
    parse is a decoding error (`malformed`). Upper-case T and Z, no leap second (see README 15)."""
    m = _TIME.fullmatch(s)
    if not m:
        raise Fail("malformed", f"{what}: not an RFC 3339 date-time: {s!r}")
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
    mdays = [31, 29 if (y % 4 == 0 and (y % 100 or y % 400 == 0)) else 28, 31, 30, 31, 30,
             31, 31, 30, 31, 30, 31]
    if not (1 <= mo <= 12 and 1 <= d <= mdays[mo - 1] and hh < 24 and mi < 60 and ss < 60):
        raise Fail("malformed", f"{what}: no such time: {s!r}")
    offset = 0
    if m.group(8) != "Z":
        oh, om = int(m.group(10)), int(m.group(11))
        if oh >= 24 or om >= 60:
            raise Fail("malformed", f"{what}: no such offset: {s!r}")
        offset = (oh * 3600 + om * 60) * (-1 if m.group(9) == "-" else 1)
    frac = int((m.group(7) or ".")[1:10].ljust(9, "0"))
    secs = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - offset
    return secs * NS + frac


NOT_SET = parse_time("0001-01-01T00:00:00Z", "zero time")
YEAR_0, YEAR_10000 = _days_from_civil(0, 1, 1) * 86400 * NS, _days_from_civil(10000, 1, 1) * 86400 * NS


def time_field(v, what):
    """A time field; absent reads as the zero time, which means "not set"."""
    return NOT_SET if v is None else parse_time(string(v, what), what)


def time_rule(t, what, outcome):
    """`set, in years 0000-9999 UTC` (SPEC 3 and 4); outcome is the section's rule class."""
    if t == NOT_SET:
        raise Fail(outcome, f"{what} is not set")
    if not YEAR_0 <= t < YEAR_10000:
        raise Fail(outcome, f"{what} is outside the years 0000-9999 UTC")


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
        raise Fail("too_large", f"{path}: larger than {limit} bytes")
    return data


def parse_envelope(data, want_type):
    """Section 2. Checks run in the order of the error classes: limits (too_large), then the
    payload type (payload_type), then the form of every field (malformed)."""
    env = obj(strict_json(data), "envelope")
    ptype, sigs = env.get("payloadType"), env.get("signatures")
    if isinstance(sigs, list):
        if len(sigs) > MAX_SIGNATURES:
            raise Fail("too_large", f"{len(sigs)} signatures, at most {MAX_SIGNATURES}")
        for i, s in enumerate(sigs):
            if isinstance(s, dict) and isinstance(s.get("keyid"), str) and utf8len(s["keyid"]) > MAX_KEYID:
                raise Fail("too_large", f"signatures[{i}].keyid is longer than {MAX_KEYID} bytes")
    if isinstance(ptype, str):
        if utf8len(ptype) > MAX_PAYLOAD_TYPE:
            raise Fail("too_large", f"payloadType is longer than {MAX_PAYLOAD_TYPE} bytes")
        if ptype and ptype != want_type:
            raise Fail("payload_type", f"payload type {ptype!r}, want {want_type!r}")
    ptype, payload, sigs = fields(env, "envelope", ("payloadType", "payload", "signatures"))
    ptype = string(ptype, "payloadType")
    if not ptype:
        raise Fail("malformed", "payloadType is missing or empty")
    payload = b64_envelope(string(payload, "payload"), "payload")
    out = []
    for i, s in enumerate(typed(sigs, list, "signatures", [])):
        kid, sig = fields(s, f"signatures[{i}]", ("keyid", "sig"))
        kid = string(kid, f"signatures[{i}].keyid")
        if not kid:
            raise Fail("malformed", f"signatures[{i}]: keyid is required")
        if not all("!" <= ch <= "~" for ch in kid):
            raise Fail("malformed", f"signatures[{i}]: keyid is not printable ASCII without spaces")
        out.append((kid, b64_envelope(string(sig, f"signatures[{i}].sig"), f"signatures[{i}].sig")))
    return ptype, payload, out


def verify_threshold(env, want_type, keys, k):
    """Section 2 steps 1-3; keys maps key id -> 32-byte public key."""
    ptype, payload, sigs = env
    if ptype != want_type:
        raise Fail("payload_type", f"payload type {ptype!r}, want {want_type!r}")
    msg = pae(ptype, payload)
    counted, bad, unknown = set(), 0, 0
    for kid, sig in sigs:
        pub = keys.get(kid)  # key ids are compared as exact strings
        if pub is None:
            unknown += 1
            continue
        if kid in counted:  # counted as valid already; a key's failed signature does not count
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
    if sigs and unknown == len(sigs):
        raise Fail("unknown_key", f"signed only by keys not in the root; {why}")
    raise Fail("threshold", why)


# ---------------------------------------------------------------- roots (3)

class Root:
    """Decodes and validates a root payload; every failure is `malformed` except too many keys."""

    def __init__(self, payload):
        v = obj(strict_json(payload), "root")
        if isinstance(v.get("keys"), list) and len(v["keys"]) > MAX_ROOT_KEYS:
            raise Fail("too_large", f"root lists {len(v['keys'])} keys, at most {MAX_ROOT_KEYS}")
        version, expires, threshold, keys = fields(v, "root", ("version", "expires", "threshold", "keys"))
        self.version = integer(version, "root version", unsigned=True)
        self.expires = time_field(expires, "root expires")
        self.threshold = integer(threshold, "root threshold")
        self.keys = {}
        for i, kv in enumerate(typed(keys, list, "root keys", [])):
            kid, b64 = fields(kv, f"root keys[{i}]", ("keyid", "ed25519"))
            kid = string(kid, f"root keys[{i}].keyid")
            pub = b64_strict(string(b64, f"root keys[{i}].ed25519"), f"root keys[{i}].ed25519")
            if len(pub) != 32:
                raise Fail("malformed", f"root keys[{i}]: public key is {len(pub)} bytes")
            if kid != keyid(pub):
                raise Fail("malformed", f"root keys[{i}]: keyid {kid!r} does not match the key")
            if kid in self.keys:
                raise Fail("malformed", f"root keys[{i}]: key id {kid} listed twice")
            self.keys[kid] = pub
        if self.version < 1:
            raise Fail("malformed", "root version must be >= 1")
        if not self.keys:
            raise Fail("malformed", "root lists no keys")
        if not 1 <= self.threshold <= len(self.keys):
            raise Fail("malformed", f"root threshold {self.threshold} not in 1..{len(self.keys)}")
        time_rule(self.expires, "root expires", "malformed")


def read_root(path):
    """Payload type first (in parse_envelope), then decode and validate to learn the keys; the
    caller then verifies the signatures over these exact payload bytes."""
    env = parse_envelope(read_limited(path, MAX_ROOT), ROOT_TYPE)
    return env, Root(env[1])


def pinned_root(path):
    env, root = read_root(path)
    verify_threshold(env, ROOT_TYPE, root.keys, root.threshold)
    return root


def _rotation_signed(env, r, who, path):
    try:
        verify_threshold(env, ROOT_TYPE, r.keys, r.threshold)
    except Fail as e:
        if e.outcome not in SIG_OUTCOMES:
            raise
        raise Fail("rotation", f"{path}: not signed by a threshold of {who} keys ({e.outcome}: {e.reason})")


def follow_chain(root, roots_dir):
    steps = 0
    while True:
        path = os.path.join(roots_dir, f"{root.version + 1}.root.json")
        if not os.path.isfile(path):
            return root
        if steps == MAX_ROTATIONS:
            raise Fail("too_large", f"{path}: more than {MAX_ROTATIONS} rotation steps in one walk")
        # Section 3: like any envelope, a chain step is verified signatures first. The file's own
        # envelope defects (too_large, payload_type, malformed) come first; then the old root's
        # threshold (rotation, whatever the payload holds); then the payload (malformed,
        # too_large); then the version and the new keys' threshold (rotation).
        env = parse_envelope(read_limited(path, MAX_ROOT), ROOT_TYPE)
        _rotation_signed(env, root, "old", path)
        new = Root(env[1])
        _rotation_signed(env, new, "its own", path)
        if new.version != root.version + 1:
            raise Fail("rotation", f"{path}: holds version {new.version}, want {root.version + 1}")
        root, steps = new, steps + 1


# ---------------------------------------------------------------- manifests (4)

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}")
MODE_RE = re.compile(r"0[0-7]{3,4}")
MANIFEST_FIELDS = ("product", "channel", "sequence", "version", "created", "expires",
                   "artifact", "chunking", "chunks", "install")
INSTALL_FIELDS = ("installer", "target", "mode", "command", "health_check", "rollback_command")
ARGV_FIELDS = INSTALL_FIELDS[3:]


def manifest_limits(v):
    """The limits of the section 4 table (too_large), judged before the form of the fields."""
    if isinstance(v.get("chunks"), list) and len(v["chunks"]) > MAX_CHUNKS:
        raise Fail("too_large", f"{len(v['chunks'])} chunks, at most {MAX_CHUNKS}")
    ins = v.get("install")
    if not isinstance(ins, dict):
        return
    if isinstance(ins.get("target"), str) and utf8len(ins["target"]) > MAX_TARGET:
        raise Fail("too_large", f"install.target is longer than {MAX_TARGET} bytes")
    for f in ARGV_FIELDS:
        argv = ins.get(f)
        if not isinstance(argv, list):
            continue
        if len(argv) > MAX_ARGS:
            raise Fail("too_large", f"install.{f} has {len(argv)} elements, at most {MAX_ARGS}")
        for x in argv:
            if isinstance(x, str) and utf8len(x) > MAX_ARG:
                raise Fail("too_large", f"an element of install.{f} is longer than {MAX_ARG} bytes")


def decode_manifest(payload):
    """Strict decode (failures: too_large, then malformed) into plain values; rules in validate()."""
    v = obj(strict_json(payload), "manifest")
    manifest_limits(v)
    m = dict(zip(MANIFEST_FIELDS, fields(v, "manifest", MANIFEST_FIELDS)))
    for f in ("product", "channel", "version"):
        m[f] = string(m[f], f)
    m["sequence"] = integer(m["sequence"], "sequence", unsigned=True)
    m["created"] = time_field(m["created"], "created")
    m["expires"] = time_field(m["expires"], "expires")
    name, size, digest = fields(typed(m["artifact"], dict, "artifact", {}), "artifact", ("name", "size", "sha256"))
    m["artifact"] = {"name": string(name, "artifact.name"), "size": integer(size, "artifact.size"),
                     "sha256": hex64(digest, "artifact.sha256")}
    c = fields(typed(m["chunking"], dict, "chunking", {}), "chunking", ("algorithm", "min", "avg", "max"))
    m["chunking"] = {"algorithm": string(c[0], "chunking.algorithm"), "min": integer(c[1], "chunking.min"),
                     "avg": integer(c[2], "chunking.avg"), "max": integer(c[3], "chunking.max")}
    chunks = []
    for i, ch in enumerate(typed(m["chunks"], list, "chunks", [])):
        h, size = fields(ch, f"chunks[{i}]", ("sha256", "size"))
        chunks.append((hex64(h, f"chunks[{i}].sha256"), integer(size, f"chunks[{i}].size")))
    m["chunks"] = chunks
    ins = dict(zip(INSTALL_FIELDS, fields(typed(m["install"], dict, "install", {}), "install", INSTALL_FIELDS)))
    for f in INSTALL_FIELDS[:3]:
        ins[f] = string(ins[f], f"install.{f}")
    for f in ARGV_FIELDS:
        ins[f] = [string(x, f"install.{f}[]") for x in typed(ins[f], list, f"install.{f}", [])]
    m["install"] = ins
    return m


def validate(m):
    """The rules table of section 4; every failure here is `invalid`."""
    def bad(msg):
        raise Fail("invalid", msg)
    for f in ("product", "channel"):
        if not NAME_RE.fullmatch(m[f]) or m[f] in ("roots", "chunks"):
            bad(f"{f} {m[f]!r} is not a valid name")
    if m["sequence"] < 1:
        bad("sequence must be >= 1")
    if not VERSION_RE.fullmatch(m["version"]):
        bad(f"version {m['version']!r} is not valid")
    time_rule(m["created"], "created", "invalid")
    time_rule(m["expires"], "expires", "invalid")
    if m["expires"] <= m["created"]:
        bad("expires is not after created")
    a, c, ins = m["artifact"], m["chunking"], m["install"]
    if not VERSION_RE.fullmatch(a["name"]):
        bad(f"artifact.name {a['name']!r} is not a file name")
    if a["size"] < 0:
        bad("artifact.size is negative")
    if not c["algorithm"]:
        bad("chunking.algorithm is empty")
    if not 0 < c["max"] <= MAX_CHUNK_SIZE:
        bad(f"chunking.max {c['max']} not in 1..{MAX_CHUNK_SIZE}")
    for i, (_, size) in enumerate(m["chunks"]):
        if not 1 <= size <= c["max"]:
            bad(f"chunks[{i}].size {size} not in 1..{c['max']}")
    total = sum(size for _, size in m["chunks"])
    if total != a["size"]:
        bad(f"chunk sizes add up to {total}, artifact.size is {a['size']}")
    need = {"file": "target", "archive": "target", "command": "command"}.get(ins["installer"])
    if need is None:
        bad(f"install.installer {ins['installer']!r} is not file, archive or command")
    if not ins[need]:
        bad(f"installer {ins['installer']} needs a non-empty install.{need}")
    if ins["mode"] and not MODE_RE.fullmatch(ins["mode"]):
        bad(f"install.mode {ins['mode']!r} is not octal 0NNN or 0NNNN")
    if not ins["target"].isprintable():
        bad("install.target has control or invisible characters")
    for f in ARGV_FIELDS:
        if any(not x for x in ins[f]):
            bad(f"install.{f} has an empty element")
        if any(not x.isprintable() for x in ins[f]):
            bad(f"install.{f} has an element with control or invisible characters")


def verify_manifest(path, root, now):
    env = parse_envelope(read_limited(path, MAX_ENVELOPE), MANIFEST_TYPE)  # 1
    verify_threshold(env, MANIFEST_TYPE, root.keys, root.threshold)        # 2
    if now > root.expires:                                                 # 3
        raise Fail("root_expired", "the root in use has expired")
    m = decode_manifest(env[1])                                            # 4
    validate(m)
    if now > m["expires"]:                                                 # 5
        raise Fail("expired", "the manifest has expired")
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
    pub = b64_strict(string(b64, "ed25519"), "ed25519")
    if string(typ, "type") != "fleetcast-public-key-v1" or len(pub) != 32 or string(kid, "keyid") != keyid(pub):
        raise Fail("malformed", f"{path}: bad type, key or keyid")
    return pub


COMMON_KEY_FIELDS = ("type", "keyid", "ed25519_public", "kdf", "aead")
KEY_VARIANTS = {("scrypt", "xchacha20poly1305"): ("scrypt", "nonce", "sealed"), ("none", "none"): ("seed",)}


def read_private_key_file(path, passphrase):
    """Section 1. Each variant has exactly its own fields; a string field of the other variant
    that is empty reads as absent (section 0: absent reads as the zero value)."""
    v = obj(strict_json(read_limited(path, MAX_KEY_FILE)), "private key file")
    fields(v, "private key file", COMMON_KEY_FIELDS + ("scrypt", "nonce", "sealed", "seed"))
    kdf, aead = string(v.get("kdf"), "kdf"), string(v.get("aead"), "aead")
    own = KEY_VARIANTS.get((kdf, aead))
    if own is None:
        raise Fail("malformed", f"{path}: unknown kdf/aead {kdf}/{aead}")
    present = {k for k in v if not (k not in COMMON_KEY_FIELDS + own and v[k] == "")}
    if present != set(COMMON_KEY_FIELDS + own):
        raise Fail("malformed", f"{path}: fields {sorted(v)} are not exactly those of the {kdf} variant")
    pub = b64_strict(string(v["ed25519_public"], "ed25519_public"), "ed25519_public")
    kid = string(v["keyid"], "keyid")
    if string(v["type"], "type") != "fleetcast-private-key-v1" or len(pub) != 32 or kid != keyid(pub):
        raise Fail("malformed", f"{path}: bad type, key or keyid")
    if kdf == "none":
        seed = b64_strict(string(v["seed"], "seed"), "seed")
    else:
        salt, log_n, r, p = fields(v["scrypt"], "scrypt", ("salt", "log_n", "r", "p"))
        salt = b64_strict(string(salt, "scrypt.salt"), "scrypt.salt")
        log_n, r, p = (integer(x, "scrypt." + n) for x, n in ((log_n, "log_n"), (r, "r"), (p, "p")))
        if not (10 <= log_n <= 22 and r == 8 and p == 1 and len(salt) >= 16):
            raise Fail("malformed", f"{path}: scrypt parameters out of range")
        nonce = b64_strict(string(v["nonce"], "nonce"), "nonce")
        if len(nonce) != 24:
            raise Fail("malformed", f"{path}: nonce is not 24 bytes")
        sealed = b64_strict(string(v["sealed"], "sealed"), "sealed")
        key = hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=1 << log_n, r=r, p=p,
                             dklen=32, maxmem=129 * r * (1 << log_n) + (1 << 20))
        ad = b"fleetcast-private-key-v1\n" + kid.encode() + b"\n" + pub
        try:
            seed = xchacha20poly1305_open(key, nonce, sealed, ad)
        except InvalidTag:
            raise Fail("wrong_passphrase", "AEAD open failed: wrong passphrase or altered file")
    if len(seed) != 32:
        raise Fail("malformed", f"{path}: seed is not 32 bytes")
    if raw_public(Ed25519PrivateKey.from_private_bytes(seed)) != pub:
        raise Fail("malformed", f"{path}: seed does not give ed25519_public")
    return seed, pub


def raw_public(sk):
    # public_bytes(Raw, Raw), not public_bytes_raw(): the latter needs cryptography 40
    return sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


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



# ---------------------------------------------------------------- self-made cases

def _sk(n):
    """Key n: the Ed25519 key whose seed is the byte n repeated 32 times (as in the vectors)."""
    return Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)


def _b64(b):
    return base64.b64encode(b).decode("ascii")


def _kid(n):
    return keyid(raw_public(_sk(n)))


def _sign(ptype, payload, signers, keyids=None):
    """A DSSE envelope (bytes). signers: key numbers; a negative number signs with -n but flips a
    signature bit. keyids optionally overrides the keyid of each signature."""
    sigs = []
    for i, n in enumerate(signers):
        sig = bytearray(_sk(abs(n)).sign(pae(ptype, payload)))
        if n < 0:
            sig[0] ^= 1
        kid = keyids[i] if keyids else _kid(abs(n))
        sigs.append({"keyid": kid, "sig": _b64(sig)})
    return json.dumps({"payloadType": ptype, "payload": _b64(payload), "signatures": sigs}).encode()


def _root(version=1, keys=(1,), threshold=1, expires="2099-01-01T00:00:00Z", signers=None, key_b64=None):
    keys_json = [{"keyid": _kid(n), "ed25519": (key_b64 or _b64)(raw_public(_sk(n)))} for n in keys]
    payload = json.dumps({"version": version, "expires": expires, "threshold": threshold,
                          "keys": keys_json}, indent=1).encode()
    return _sign(ROOT_TYPE, payload, keys[:threshold] if signers is None else signers)


ARTIFACT = bytes(range(256)) * 12  # 3072 bytes, one chunk


def _manifest_payload(edits=(), **over):
    """A valid manifest payload; `over` replaces top-level fields, `edits` are (old, new) text
    replacements on the JSON, for what json.dumps cannot write (-1 as a float, null, ...)."""
    digest = hashlib.sha256(ARTIFACT).hexdigest()
    m = {"product": "myapp", "channel": "stable", "sequence": 1, "version": "1.0.0",
         "created": "2026-01-01T00:00:00Z", "expires": "2099-01-01T00:00:00Z",
         "artifact": {"name": "myapp-linux-amd64", "size": len(ARTIFACT), "sha256": digest},
         "chunking": {"algorithm": "fastcdc-gear-v1", "min": 1024, "avg": 2048, "max": 4096},
         "chunks": [{"sha256": digest, "size": len(ARTIFACT)}],
         "install": {"installer": "file", "target": "/opt/myapp/bin/myapp", "mode": "0755"}}
    m.update(over)
    text = json.dumps(m)
    for old, new in edits:
        if old not in text:
            raise AssertionError(f"self-made case: {old!r} not in the manifest")
        text = text.replace(old, new, 1)
    return text.encode()


def _manifest(edits=(), signers=(1,), keyids=None, ptype=MANIFEST_TYPE, **over):
    return _sign(ptype, _manifest_payload(edits, **over), list(signers), keyids)


def _run_case(want, manifest, root=None, roots=None, now="2026-06-01T00:00:00Z", artifact=None):
    """Writes a vector directory (same layout as testdata/vectors) and runs it."""
    with tempfile.TemporaryDirectory() as d:
        files = {"root.json": root if root is not None else _root(), "manifest.json": manifest}
        for n, data in (roots or {}).items():
            files[f"roots/{n}.root.json"] = data
        hdr = {"expect": want, "now": now}
        if artifact is not None:
            files["artifact.bin"], hdr["artifact"] = artifact, "artifact.bin"
        files["vector.json"] = json.dumps(hdr).encode()
        os.makedirs(os.path.join(d, "roots"))
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        return run_vector(d)


def _key_file_case(want, doc, passphrase=""):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "k.key")
        with open(path, "wb") as f:
            f.write(doc if isinstance(doc, bytes) else json.dumps(doc, indent=2).encode())
        try:
            read_private_key_file(path, passphrase)
            return want, "ok", ""
        except Fail as e:
            return want, e.outcome, e.reason


def _unencrypted_key(n, **extra):
    pub = raw_public(_sk(n))
    doc = {"type": "fleetcast-private-key-v1", "keyid": keyid(pub), "ed25519_public": _b64(pub),
           "kdf": "none", "aead": "none", "seed": _b64(bytes([n]) * 32)}
    doc.update(extra)
    return doc


def _url_safe(s):
    return s.replace("+", "-").replace("/", "_")


def _rotation_chain(steps):
    """roots/2.root.json ... roots/<steps+1>.root.json, each signed by key 1 (old and new keys)."""
    return {v: _root(version=v) for v in range(2, steps + 2)}


def self_made_cases(top):
    """(name, want, got, reason) for points of the revised spec that no vector covers."""
    def case(name, want, manifest=None, **kw):
        return (name,) + _run_case(want, manifest if manifest is not None else _manifest(), **kw)

    root_2of3 = _root(keys=(1, 2, 3), threshold=2)
    yield case("self/baseline", "ok", artifact=ARTIFACT)
    # section 0: integers, null, field names, hex, times
    yield case("self/sequence-negative", "malformed", _manifest([('"sequence": 1', '"sequence": -1')]))
    yield case("self/sequence-zero", "invalid", _manifest(sequence=0))
    yield case("self/sequence-max-uint64", "ok", _manifest(sequence=(1 << 64) - 1))
    yield case("self/sequence-over-uint64", "malformed", _manifest(sequence=1 << 64))
    yield case("self/size-1.0", "malformed", _manifest([('"size": 3072', '"size": 3072.0')]))
    yield case("self/size-1e3", "malformed", _manifest([('"size": 3072', '"size": 3072e0')]))
    yield case("self/null-mode", "malformed", _manifest([('"mode": "0755"', '"mode": null')]))
    yield case("self/field-name-case", "malformed", _manifest([('"product"', '"Product"')]))
    yield case("self/repeated-key-ignoring-case", "malformed",
               _manifest([('"version": "1.0.0"', '"version": "1.0.0", "Version": "1.0.0"')]))
    yield case("self/sha256-upper-case", "malformed", _manifest(
        [('"sha256": "' + hashlib.sha256(ARTIFACT).hexdigest(),
          '"sha256": "' + hashlib.sha256(ARTIFACT).hexdigest().upper())]))
    yield case("self/time-offsets-and-fractions", "ok",
               _manifest(created="2026-01-01T02:00:00+02:00", expires="2098-12-31T19:00:00.123456789-05:00"),
               root=_root(expires="2099-01-01T01:00:00+01:00"))
    yield case("self/sequence-minus-zero", "malformed", _manifest([('"sequence": 1', '"sequence": -0')]))
    yield case("self/time-unparseable", "malformed", _manifest(created="2026-01-01 00:00:00Z"))
    yield case("self/time-no-such-day", "malformed", _manifest(created="2026-02-29T00:00:00Z"))
    yield case("self/created-not-set", "invalid", _manifest(created="0001-01-01T00:00:00Z"))
    yield case("self/created-absent", "invalid", _manifest([('"created": "2026-01-01T00:00:00Z", ', '')]))
    yield case("self/expires-year-10000-utc", "invalid", _manifest(expires="9999-12-31T23:30:00-01:00"))
    yield case("self/expires-equals-now", "ok", _manifest(expires="2026-06-01T02:00:00+02:00"))
    yield case("self/expires-just-before-now", "expired", _manifest(expires="2026-05-31T23:59:59.999999999Z"))
    yield case("self/root-expires-not-set", "malformed", root=_root(expires="0001-01-01T00:00:00Z"))
    # section 4: empty artifact, install bounds
    empty = hashlib.sha256(b"").hexdigest()
    yield case("self/empty-artifact", "ok", _manifest(
        artifact={"name": "empty", "size": 0, "sha256": empty}, chunks=[]), artifact=b"")
    yield case("self/file-installer-with-command", "ok", _manifest(
        install={"installer": "file", "target": "/opt/x", "command": ["x"], "health_check": ["x", "-t"]}))
    yield case("self/argv-element-empty", "invalid", _manifest(install={"installer": "command", "command": ["x", ""]}))
    yield case("self/argv-element-4096", "ok", _manifest(install={"installer": "command", "command": ["x" * 4096]}))
    yield case("self/target-carriage-return", "invalid", _manifest(install={"installer": "file", "target": "/etc/x\r /opt/app"}))
    yield case("self/argv-bidi-override", "invalid", _manifest(install={"installer": "command", "command": ["dpkg", "\u202e-i"]}))
    yield case("self/keyid-with-space", "malformed", _manifest(signers=(1,), keyids=("a b",)))
    yield case("self/argv-element-4097", "too_large", _manifest(install={"installer": "command", "command": ["x" * 4097]}))
    yield case("self/argv-65-elements", "too_large", _manifest(
        install={"installer": "file", "target": "/t", "rollback_command": ["x"] * 65}))
    yield case("self/target-4097-bytes", "too_large", _manifest(install={"installer": "file", "target": "/" * 4097}))
    n = MAX_CHUNKS + 1
    yield case("self/too-many-chunks", "too_large", _manifest(
        artifact={"name": "big", "size": n, "sha256": empty}, chunks=[{"sha256": empty, "size": 1}] * n))
    # section 2: envelopes
    env = json.loads(_manifest())
    env["payload"] = _url_safe(env["payload"]).rstrip("=")
    yield case("self/payload-url-safe-unpadded", "ok", json.dumps(env).encode())
    env["payload"] = "\n".join(env["payload"][i:i + 76] for i in range(0, len(env["payload"]), 76))
    yield case("self/payload-line-breaks", "malformed", json.dumps(env).encode())
    env = json.loads(_manifest(ptype="application/vnd.in-toto+json"))
    env["payload"] = "!" + env["payload"]
    yield case("self/wrong-type-and-bad-base64", "payload_type", json.dumps(env).encode())
    yield case("self/33-signatures", "too_large", _manifest(signers=[1] * 33))
    yield case("self/envelope-over-24MiB", "too_large", _manifest() + b" " * MAX_ENVELOPE)
    yield case("self/root-over-64KiB", "too_large", root=_root() + b" " * MAX_ROOT)
    yield case("self/keyid-257-bytes", "too_large", _manifest(signers=(1, 1), keyids=(_kid(1), "a" * 257)))
    yield case("self/keyid-empty", "malformed", _manifest(signers=(1, 1), keyids=(_kid(1), "")))
    yield case("self/keyid-upper-case", "unknown_key", _manifest(keyids=(_kid(1).upper(),)))
    yield case("self/sig-wrong-length", "bad_signature",
               _manifest([], signers=(1,)).replace(b'"sig": "', b'"sig": "AAAA', 1))
    yield case("self/failed-then-valid-same-key", "ok", _manifest(signers=(-1, 1)))
    yield case("self/unknown-plus-one-valid-below-threshold", "threshold", _manifest(signers=(9, 1)), root=root_2of3)
    yield case("self/unknown-plus-failed", "bad_signature", _manifest(signers=(9, -1)), root=root_2of3)
    yield case("self/unknown-plus-valid-threshold-met", "ok", _manifest(signers=(9, 1, 2)), root=root_2of3)
    # section 3: roots, strict base64, rotation
    yield case("self/root-key-url-safe", "malformed", root=_root(keys=(2,), key_b64=lambda b: _url_safe(_b64(b))))
    yield case("self/root-key-unpadded", "malformed", root=_root(key_b64=lambda b: _b64(b).rstrip("=")))
    yield case("self/root-key-trailing-bits", "malformed",
               root=_root(key_b64=lambda b: _b64(b)[:42] + chr(ord(_b64(b)[42]) + 1) + "="))
    yield case("self/root-33-keys", "too_large", root=_root(keys=tuple(range(1, 34))))
    yield case("self/root-version-negative", "malformed", root=_root(version=-1))
    yield case("self/chain-unsigned-garbage-payload", "rotation", roots={2: json.dumps(
        {"payloadType": ROOT_TYPE, "payload": base64.b64encode(b"not a root").decode(), "signatures": []}).encode()})
    yield case("self/chain-root-over-64KiB", "too_large", roots={2: _root(version=2) + b" " * MAX_ROOT})
    yield case("self/rotation-1024-steps", "ok", roots=_rotation_chain(MAX_ROTATIONS))
    yield case("self/rotation-1025-steps", "too_large", roots=_rotation_chain(MAX_ROTATIONS + 1))
    # section 1: key files
    yield ("self/key-unencrypted",) + _key_file_case("ok", _unencrypted_key(5))
    yield ("self/key-unencrypted-plus-nonce",) + _key_file_case("malformed", _unencrypted_key(5, nonce=_b64(bytes(24))))
    yield ("self/key-unencrypted-seed-unpadded",) + _key_file_case(
        "malformed", _unencrypted_key(5, seed=_b64(bytes([5]) * 32).rstrip("=")))
    yield ("self/key-file-over-4096",) + _key_file_case("too_large", json.dumps(_unencrypted_key(5)).encode() + b" " * 4096)
    enc = strict_json(open(os.path.join(top, "keys", "encrypted.key"), "rb").read())
    enc["seed"] = _b64(bytes(32))
    yield ("self/key-encrypted-plus-seed",) + _key_file_case("malformed", enc)
    del enc["seed"], enc["nonce"]
    yield ("self/key-encrypted-without-nonce",) + _key_file_case("malformed", enc)

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
    cases = self_made_cases(top)
    while True:
        try:
            name, want, got, reason = next(cases)
        except StopIteration:
            break
        except Exception as e:  # a crash while building or running a case ends the self-made cases
            report("self-made cases", f"crash {type(e).__name__}", "no crash", str(e))
            break
        report(name, got, want, reason)
    for name, want, got in known_answers():
        report(name, "ok" if got == want else "differs", "ok", f"got {got!r}, want {want!r}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
