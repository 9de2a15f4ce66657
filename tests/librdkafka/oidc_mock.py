#!/usr/bin/env python3
"""A mock OIDC identity provider for librdkafka's 0126_oauthbearer_oidc (tests/librdkafka/run.sh).

It serves what trivup's OauthbearerOIDCApp serves (the mock librdkafka's own CI runs), on
127.0.0.1 at an ephemeral port:

    POST /retrieve            a signed access token (RS256, 60 s) for a client_credentials grant
                              (Basic authorization required; scope, if any, one of VALID_SCOPES)
                              or a jwt-bearer grant (RFC 7523: an `assertion` the client signed with
                              the private key this mock wrote, with a non-empty `sub`; scope, if
                              any, one of VALID_SCOPES)
    GET  /retrieve?...        the same token for an Azure IMDS metadata query
                              (`__metadata_authentication_type=azure_imds`, `client_id`, `resource`,
                              `api-version`, header `Metadata: true`)
    POST /retrieve/badformat  a token whose signature does not verify (text appended to it)
    POST /retrieve/expire     a token that expired a minute ago (beyond Kafka's 30 s skew)
    GET  /keys                the JWKS with the signing key's public half

Anything malformed gets HTTP 400 with the reason, which librdkafka reports as a token failure.
Tokens carry iss, sub, aud, scope, iat and exp; the kid names the one signing key.

At start it writes, into --dir: jwks.json (the JWKS, for `rill cluster up --oauthbearer
file:DIR/jwks.json`), client.key and client-encrypted.key (the jwt-bearer assertion key, PEM,
the second encrypted with a random password), and last, atomically, oidc.env: the environment
0126 reads (VALID_OIDC_URL, INVALID_OIDC_URL, EXPIRED_TOKEN_OIDC_URL, OAUTHBEARER_CLIENT_PRIVATE_KEY,
OAUTHBEARER_CLIENT_PRIVATE_KEY_ENCRYPTED, OAUTHBEARER_CLIENT_PRIVATE_KEY_PASSWORD) as shell
assignments. Its existence says the server is listening. Runs until SIGTERM or SIGINT, or until
the process --parent names is gone.

Needs PyJWT and cryptography (the venv .ci/run makes).
"""

import argparse
import base64
import http.server
import json
import os
import secrets
import shlex
import signal
import sys
import threading
import time
import urllib.parse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# trivup's list.
VALID_SCOPES = ("test", "test-scope", "api://1234-abcd/.default")
KEY_ID = "rill-oidc-mock"
ISSUER = "rill-oidc-mock"
# trivup's claims: its Kafka expects audience api://default; the principal is User:subject.
SUBJECT = "subject"
AUDIENCE = "api://default"
TOKEN_LIFETIME_S = 60


def say(message):
    print(f"oidc-mock: {message}", file=sys.stderr, flush=True)


class Provider:
    """The keys and the tokens."""

    def __init__(self):
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_public_key = self.client_key.public_key()

    def jwks(self):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.signing_key.public_key()))
        jwk.pop("key_ops", None)  # `use` says it (RFC 7517 4.3: not both)
        jwk.update({"kid": KEY_ID, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def token(self, lifetime_s=TOKEN_LIFETIME_S, issued_ago_s=0, scope="test"):
        now = int(time.time()) - issued_ago_s
        claims = {
            "iss": ISSUER,
            "sub": SUBJECT,
            "aud": AUDIENCE,
            "scope": scope,
            "iat": now,
            "exp": now + lifetime_s,
        }
        return jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": KEY_ID})

    def check_assertion(self, assertion):
        """None if the jwt-bearer assertion is signed by the client key and names a subject, else why not."""
        try:
            claims = jwt.decode(
                assertion,
                self.client_public_key,
                algorithms=["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
                # The assertion's audience is the token endpoint the client was told; its times
                # are the client's. Only the signature and the subject are checked, as trivup does.
                options={"verify_aud": False, "verify_iat": False},
            )
        except jwt.PyJWTError as error:
            return f"invalid assertion: {error}"
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            return "the assertion names no subject (sub)"
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    provider = None  # set before serving
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if os.environ.get("RILL_OIDC_MOCK_VERBOSE"):
            say(f"{self.command} {self.path}: " + format % args)

    def reply_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, status, reason):
        # An OAuth error body (RFC 6749 5.2): JSON, so that librdkafka reports the reason.
        self.reply_json(status, {"error": "invalid_request", "error_description": reason})

    def token_reply(self, token):
        self.reply_json(200, {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_S})

    def read_form(self):
        """The urlencoded body as a dict of lists, or None after refusing the request."""
        if self.headers.get("Content-Length") is None:
            self.refuse(400, "Content-Length field is required")
            return None
        if self.headers.get("Content-Type") is None:
            self.refuse(400, "Content-Type field is required")
            return None
        try:
            length = int(self.headers["Content-Length"])
        except ValueError:
            self.refuse(400, "Content-Length is not a number")
            return None
        if not 0 <= length <= 1 << 20:
            self.refuse(400, "Content-Length out of range")
            return None
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        return urllib.parse.parse_qs(body, keep_blank_values=True)

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/retrieve":
            self.retrieve()
        elif path == "/retrieve/badformat":
            self.token_reply(self.provider.token(lifetime_s=30) + "invalid")
        elif path == "/retrieve/expire":
            self.token_reply(self.provider.token(lifetime_s=60, issued_ago_s=120))
        else:
            self.refuse(404, f"URL is not valid: {self.path}")

    def retrieve(self):
        form = self.read_form()
        if form is None:
            return
        if self.headers.get("Accept") != "application/json":
            self.refuse(400, 'Accept field should be "application/json"')
            return
        grant = form.get("grant_type", [""])[0]
        scope = form.get("scope", [None])[0]
        if scope is not None and scope not in VALID_SCOPES:
            self.refuse(400, f"Invalid scope {scope!r}, scope should be one of {list(VALID_SCOPES)}")
            return
        if grant == JWT_BEARER_GRANT_TYPE:
            assertion = form.get("assertion", [None])[0]
            if not assertion:
                self.refuse(400, "assertion field is required in data")
                return
            problem = self.provider.check_assertion(assertion)
            if problem:
                self.refuse(400, problem)
                return
        elif grant == "client_credentials":
            authorization = self.headers.get("Authorization", "")
            if not authorization.startswith("Basic ") or not valid_basic(authorization[6:]):
                self.refuse(400, "Authorization field (Basic client id and secret) is required")
                return
        else:
            self.refuse(400, "grant_type should be client_credentials or " + JWT_BEARER_GRANT_TYPE)
            return
        self.token_reply(self.provider.token(scope=scope or "test"))

    def do_GET(self):
        split = urllib.parse.urlsplit(self.path)
        if split.path == "/keys":
            self.reply_json(200, self.provider.jwks())
        elif split.path == "/retrieve" and split.query:
            self.metadata_retrieve(urllib.parse.parse_qs(split.query, keep_blank_values=True))
        elif split.path == "/retrieve":
            self.reply_json(200, {"about": "rill's mock OIDC token endpoint (tests/librdkafka/oidc_mock.py)"})
        else:
            self.refuse(404, f"URL is not valid: {self.path}")

    def metadata_retrieve(self, query):
        """Azure IMDS: GET with the query librdkafka appends from sasl.oauthbearer.config's `query`."""
        if self.headers.get("Accept") != "application/json":
            self.refuse(400, 'Accept field should be "application/json"')
            return
        kind = query.get("__metadata_authentication_type", [None])[0]
        if kind is None:
            self.refuse(400, "__metadata_authentication_type field is required in query parameters")
            return
        if kind != "azure_imds":
            self.refuse(400, "__metadata_authentication_type is not a supported type")
            return
        for field in ("client_id", "resource", "api-version"):
            if field not in query:
                self.refuse(400, f"{field} field is required in query parameters")
                return
        if (self.headers.get("Metadata") or "").lower() != "true":
            self.refuse(400, 'Metadata header must be set to "true"')
            return
        self.token_reply(self.provider.token())


def valid_basic(credentials):
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except ValueError:
        return False
    client_id, colon, _secret = decoded.partition(":")
    return bool(colon and client_id)


def watch_parent(pid, server):
    while True:
        time.sleep(1)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            say(f"process {pid} is gone: stopping")
            server.shutdown()
            return
        except PermissionError:
            pass


def write_file(path, data, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="where the JWKS, the client keys and oidc.env go")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--parent", type=int, default=0, help="exit when this process is gone (run.sh's pid)")
    args = parser.parse_args()

    provider = Provider()
    Handler.provider = provider
    server = http.server.ThreadingHTTPServer((args.host, 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    base = f"http://{args.host}:{port}"

    os.makedirs(args.dir, exist_ok=True)
    write_file(os.path.join(args.dir, "jwks.json"), json.dumps(provider.jwks(), indent=1).encode(), 0o644)
    key_path = os.path.join(args.dir, "client.key")
    write_file(
        key_path,
        provider.client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    password = secrets.token_urlsafe(12)
    encrypted_path = os.path.join(args.dir, "client-encrypted.key")
    write_file(
        encrypted_path,
        provider.client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        ),
    )
    environment = {
        "VALID_OIDC_URL": f"{base}/retrieve",
        "INVALID_OIDC_URL": f"{base}/retrieve/badformat",
        "EXPIRED_TOKEN_OIDC_URL": f"{base}/retrieve/expire",
        "OAUTHBEARER_CLIENT_PRIVATE_KEY": key_path,
        "OAUTHBEARER_CLIENT_PRIVATE_KEY_ENCRYPTED": encrypted_path,
        "OAUTHBEARER_CLIENT_PRIVATE_KEY_PASSWORD": password,
    }
    text = "".join(f"{name}={shlex.quote(value)}\n" for name, value in environment.items())

    def stop(signum, _frame):
        # shutdown() waits for serve_forever to return: from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.parent:
        # A parent killed with SIGKILL runs no trap: do not outlive it.
        threading.Thread(target=watch_parent, args=(args.parent, server), daemon=True).start()
    # Written last: its presence tells run.sh that the keys are there and the port listens.
    write_file(os.path.join(args.dir, "oidc.env"), text.encode())
    say(f"listening on {base}")
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
