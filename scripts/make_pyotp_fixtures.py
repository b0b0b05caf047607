#!/usr/bin/env python3
"""Writes tests/fixtures/pyotp/: databases and codes made by the real producers.

Run from the repository root:

    python3 -m venv /tmp/pyotp-venv
    /tmp/pyotp-venv/bin/pip install pyotp bcrypt flask-bcrypt
    /tmp/pyotp-venv/bin/python scripts/make_pyotp_fixtures.py

Outputs (small, committed):

* tutorial.sqlite - table `users` as the Flask + Flask-Login + Flask-Bcrypt + pyotp
  tutorial builds it: id, username, password (bcrypt), created_at,
  is_two_factor_authentication_enabled, secret_token (pyotp.random_base32(), 32 chars).
  One password is Flask-Bcrypt's default `$2b$12$`; the others use cost 4 so tests
  stay fast.
* simple.sqlite - the "simple variant": table `accounts` with a clear `password`
  and `totp_secret` of 16 base32 characters (80 bits; 2FA on whenever it is set).
* users.json - per user: username, password, secret, 2FA flag, the provisioning URIs
  pyotp writes with and without an issuer, and (unix time, code) pairs computed by
  pyotp.

Current pyotp (2.10+) refuses secrets under 112 bits; older releases and many apps
(`String(16)` columns) made 80-bit ones, so codes for those come from a subclass
that lowers `min_secret_length_bits` to 80 - the same HOTP/TOTP code path.
"""
import base64
import importlib.metadata
import json
import os
import sqlite3

import bcrypt
import flask_bcrypt
import pyotp
from flask import Flask

OUT = os.path.join("tests", "fixtures", "pyotp")
TIMES = [1_700_000_000, 1_700_000_030, 1_800_000_017]


class LegacyTOTP(pyotp.TOTP):
    min_secret_length_bits = 80


def codes(secret):
    totp = LegacyTOTP(secret)
    return [[t, totp.at(t)] for t in TIMES]


def uris(secret, name):
    totp = LegacyTOTP(secret)
    return {
        "uri_with_issuer": totp.provisioning_uri(name=name, issuer_name="Flask 2FA Demo"),
        "uri_without_issuer": totp.provisioning_uri(name=name),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    app = Flask(__name__)
    fb = flask_bcrypt.Bcrypt(app)  # BCRYPT_LOG_ROUNDS defaults to 12
    out = {"pyotp_version": importlib.metadata.version("pyotp"),
           "bcrypt_version": bcrypt.__version__, "tutorial": [], "simple": []}

    tutorial = [
        # username, password, 2FA on, cost (None = Flask-Bcrypt default 12)
        ("alice", "correct horse battery", True, None),
        ("bob", "hunter2hunter2", True, 4),
        ("carol.smith@example.com", "p\u00e4ssw\u00f6rd with spaces", False, 4),
        ("dave_72", "d" * 72, True, 4),
        ("Erin", "Erin's password", True, 4),
        ("frank smith", "spaces in the name", True, 4),  # outside the crate's rule
    ]
    path = os.path.join(OUT, "tutorial.sqlite")
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(20) UNIQUE NOT NULL,"
        " password VARCHAR(60) NOT NULL, created_at DATETIME NOT NULL,"
        " is_two_factor_authentication_enabled BOOLEAN NOT NULL DEFAULT 0,"
        " secret_token VARCHAR(32) UNIQUE NOT NULL)")
    for i, (name, pw, on, cost) in enumerate(tutorial, start=1):
        if cost is None:
            hashed = fb.generate_password_hash(pw).decode()
        else:
            hashed = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(cost)).decode()
        secret = pyotp.random_base32()
        db.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                   (i, name, hashed, "2024-01-0%d 12:00:00" % i, on, secret))
        out["tutorial"].append({"username": name, "password": pw, "password_hash": hashed,
                                "secret": secret, "two_factor_enabled": on,
                                "codes": codes(secret), **uris(secret, name)})
    db.commit()
    db.close()

    simple = [
        ("grace", "grace-password", True),
        ("heidi", "heidi-password", False),
    ]
    path = os.path.join(OUT, "simple.sqlite")
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL,"
               " password TEXT NOT NULL, totp_secret VARCHAR(16))")
    for i, (name, pw, has) in enumerate(simple, start=1):
        # pyotp.random_base32(16) was allowed before pyotp 2.4; what it made:
        secret = base64.b32encode(os.urandom(10)).decode() if has else None
        db.execute("INSERT INTO accounts VALUES (?, ?, ?, ?)", (i, name, pw, secret))
        entry = {"username": name, "password": pw, "secret": secret,
                 "two_factor_enabled": secret is not None}
        if secret:
            entry.update(codes=codes(secret), **uris(secret, name))
        out["simple"].append(entry)
    db.commit()
    db.close()

    with open(os.path.join(OUT, "users.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
