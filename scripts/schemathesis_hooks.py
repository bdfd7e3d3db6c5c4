"""Schemathesis hooks for the fuzz run of Sara's OpenAPI document (tests/api/openapi.rs).

Signs the generated webhooks with the real algorithms, so the fuzzer reaches past the
signature check into the handlers:
- Twilio routes: `X-Twilio-Signature`, computed by the `twilio` package's RequestValidator
  over Sara's public URL plus the path and query as sent, and the form parameters as sent;
- `POST /webhook/whatsapp`: `X-Hub-Signature-256`, HMAC-SHA256 of the body bytes as sent,
  keyed with the app secret;
- `GET /webhook/whatsapp`: the right verify token in half of the handshakes.

The body is serialized here and handed to the transport as bytes (`kwargs["data"]`), so what
is signed is exactly what goes on the wire. About one request in six is left unsigned or
wrongly signed, so the documented 403s are exercised too.

Half of the `{phone}` and `{id}` path parameters become SARA_FUZZ_PHONE, a caller the test
has booked for, so the admin routes answer with real rows and not only 404s.

Settings come from the environment: SARA_FUZZ_PUBLIC_URL (Sara's `server.public_url`),
SARA_FUZZ_TWILIO_TOKEN, SARA_FUZZ_APP_SECRET, SARA_FUZZ_VERIFY_TOKEN, SARA_FUZZ_PHONE,
SARA_FUZZ_SEED.
"""

import hashlib
import hmac
import json
import os
import random
import urllib.parse

import requests
import schemathesis
from schemathesis.core import NotSet
from twilio.request_validator import RequestValidator

PUBLIC_URL = os.environ["SARA_FUZZ_PUBLIC_URL"].rstrip("/")
TWILIO = RequestValidator(os.environ["SARA_FUZZ_TWILIO_TOKEN"])
APP_SECRET = os.environ["SARA_FUZZ_APP_SECRET"].encode()
VERIFY_TOKEN = os.environ["SARA_FUZZ_VERIFY_TOKEN"]
KNOWN_PHONE = os.environ.get("SARA_FUZZ_PHONE")
RANDOM = random.Random(int(os.environ.get("SARA_FUZZ_SEED", "0")))
UNSIGNED_SHARE = 1 / 6


def _text(value):
    """A generated form value as the text that goes on the wire."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return json.dumps(value)


def _body_bytes(case):
    """The request body as bytes, or None when the case has none."""
    body = case.body
    if isinstance(body, NotSet):
        return None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    media = (case.media_type or "").split(";")[0].strip()
    if media == "application/x-www-form-urlencoded":
        if isinstance(body, dict):
            return urllib.parse.urlencode([(str(k), _text(v)) for k, v in body.items()]).encode()
        return _text(body).encode()
    return json.dumps(body).encode()


def _path_and_query(case):
    """The path and query exactly as the transport will send them."""
    query = case.query if isinstance(case.query, dict) else None
    prepared = requests.Request("GET", "http://sara" + case.formatted_path, params=query).prepare()
    return prepared.path_url


def _set_header(case, name, value):
    headers = dict(case.headers or {})
    for key in [k for k in headers if k.lower() == name.lower()]:
        del headers[key]
    if value is not None:
        headers[name] = value
    case.headers = headers


def _unsigned(case, name):
    """Leaves the request unsigned (no header) or wrongly signed."""
    _set_header(case, name, RANDOM.choice([None, "c2lnbmF0dXJl", "sha256=00"]))


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    method = case.operation.method.upper()
    if KNOWN_PHONE and isinstance(case.path_parameters, dict) and RANDOM.random() < 0.5:
        for name in ("phone", "id"):
            if name in case.path_parameters:
                case.path_parameters = {**case.path_parameters, name: KNOWN_PHONE}
    if not path.startswith("/webhook"):
        return
    if path == "/webhook/whatsapp" and method == "GET":
        if RANDOM.random() < 0.5:
            query = case.query if isinstance(case.query, dict) else {}
            case.query = {
                "hub.mode": "subscribe",
                "hub.challenge": "1158201444",
                **query,
                "hub.verify_token": VERIFY_TOKEN,
            }
        return
    body = _body_bytes(case)
    if body is not None:
        kwargs["data"] = body
    if path == "/webhook/whatsapp":
        if RANDOM.random() < UNSIGNED_SHARE:
            _unsigned(case, "X-Hub-Signature-256")
            return
        digest = hmac.new(APP_SECRET, body or b"", hashlib.sha256).hexdigest()
        _set_header(case, "X-Hub-Signature-256", "sha256=" + digest)
        return
    if RANDOM.random() < UNSIGNED_SHARE:
        _unsigned(case, "X-Twilio-Signature")
        return
    url = PUBLIC_URL + _path_and_query(case)
    if path == "/webhook/voice/relay":
        # The WebSocket handshake is signed over the ws(s):// URL with no parameters.
        url = "wss://" + url.split("://", 1)[1] if url.startswith("https://") else "ws://" + url.split("://", 1)[1]
        params = {}
    else:
        text = (body or b"").decode("utf-8", "replace")
        params = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    signature = TWILIO.compute_signature(url, params)
    _set_header(case, "X-Twilio-Signature", signature)
