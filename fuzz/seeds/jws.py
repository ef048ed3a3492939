#!/usr/bin/env python3
"""Writes fuzz/corpus/jws/independent-<alg>: the OIDC Core example ID token claims signed
with the `jws` target's keys (tests/keys/*.pem, HS* with the target's secret) by Python's
`cryptography` (OpenSSL), not by oidc-flow, so the `jws` check's converse ("a validly
signed token is accepted") runs on tokens our own signer did not make.

Run from the repository root: python3 fuzz/seeds/jws.py
Signatures by RSA-PSS and ECDSA are randomized: re-running changes those files."""
import base64
import hashlib
import hmac
import json
import pathlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEYS = ROOT / "tests" / "keys"
OUT = ROOT / "fuzz" / "corpus" / "jws"
# JWS_HMAC_SECRET in fuzz/harness.rs.
SECRET = b"fuzz-hmac-secret-0123456789abcdef"
CLAIMS = {
    "iss": "https://server.example.com",
    "sub": "24400320",
    "aud": "s6BhdRkqt3",
    "nonce": "n-0S6_WzA2Mj",
    "exp": 1311281970,
    "iat": 1311280970,
    "auth_time": 1311280969,
    "acr": "urn:mace:incommon:iap:silver",
}
HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
# (alg, kid in the harness's JWS_KEYS, PEM file); HS* have no kid.
ALGS = [
    ("HS256", None, None),
    ("HS384", None, None),
    ("HS512", None, None),
    ("RS256", "key-rs256", "rsa2048.pem"),
    ("RS384", "key-rs384", "rsa2048.pem"),
    ("RS512", "key-rs512", "rsa2048.pem"),
    ("PS256", "key-ps256", "rsa2048.pem"),
    ("PS384", "key-ps384", "rsa2048.pem"),
    ("PS512", "key-ps512", "rsa2048.pem"),
    ("ES256", "key-es256", "p256.pem"),
    ("ES384", "key-es384", "p384.pem"),
    ("ES512", "key-es512", "p521.pem"),
    ("EdDSA", "key-eddsa", "ed25519.pem"),
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(alg: str, pem: str | None, message: bytes) -> bytes:
    bits = alg[2:]
    if alg.startswith("HS"):
        return hmac.new(SECRET, message, getattr(hashlib, "sha" + bits)).digest()
    key = serialization.load_pem_private_key((KEYS / pem).read_bytes(), password=None)
    if alg == "EdDSA":
        return key.sign(message)
    if alg.startswith("RS"):
        return key.sign(message, padding.PKCS1v15(), HASH[bits]())
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(HASH[bits]()), salt_length=HASH[bits].digest_size)
        return key.sign(message, pss, HASH[bits]())
    # ES*: JWS carries r || s, each the curve's size (RFC 7518 section 3.4).
    r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(HASH[bits]())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


for alg, kid, pem in ALGS:
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    compact = lambda v: json.dumps(v, separators=(",", ":")).encode()  # noqa: E731
    message = f"{b64(compact(header))}.{b64(compact(CLAIMS))}".encode()
    token = message.decode() + "." + b64(sign(alg, pem, message))
    (OUT / f"independent-{alg.lower()}").write_text(token)
    print(alg, len(token))
