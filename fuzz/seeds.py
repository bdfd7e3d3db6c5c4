#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/ (committed; re-run to regenerate).

- whatsapp_webhook: the real Cloud API payloads in ../shared/fixtures/whatsapp (pywa's test
  data, MIT) and the Meta-signed body, as raw JSON bodies.
- twilio_form: SMS and Voice form bodies in Twilio's parameter names, each after the 4-byte
  gather counter the target reads first.
- rule_nlu: every message of the rule NLU's table tests (src/ai/rules/tests.rs), after the
  12-byte header the target reads (message time, zone, expected slot, service list).
"""
import hashlib, json, pathlib, re, struct, sys

here = pathlib.Path(__file__).resolve().parent
fixtures = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent.parent / "shared/fixtures"

def write(target, data):
    d = here / "seeds" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)

wa = fixtures / "whatsapp"
if wa.is_dir():
    for f in sorted(wa.glob("*.json")):
        doc = json.loads(f.read_text())
        if "payload" in doc and isinstance(doc["payload"], dict):
            write("whatsapp_webhook", json.dumps(doc["payload"]).encode())
        if "raw_body" in doc:
            write("whatsapp_webhook", doc["raw_body"].encode())

forms = [
    "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212",
    "MessageSid=SM11111111111111111111111111111111&From=%2B14155550100&To=%2B14155550199&Body=Can+I+book+a+haircut+tomorrow+at+3pm%3F&NumMedia=0",
    "CallSid=CA42&From=%2B442071838750&SpeechResult=next+Tuesday+at+half+past+four+please&Confidence=0.92",
    "From=whatsapp%3A%2B14155550100&Body=%F0%9F%91%8D+yes&MessageSid=",
    "CallSid=CA1&CallStatus=completed&From=%2B14155550100",
]
for n, form in zip([1, 1, 7, 0, 4294967295], forms):
    write("twilio_form", struct.pack("<I", n) + form.encode())

tests = (here.parent / "src/ai/rules/tests.rs").read_text()
texts = sorted(set(re.findall(r'\bc\("((?:[^"\\]|\\.)*)"\)', tests)))
wednesday = 1795618800  # 2026-11-25 10:00 America/New_York, as a Unix time
for i, text in enumerate(texts):
    text = text.encode().decode("unicode_escape").encode("latin-1").decode()
    header = struct.pack("<qHBB", wednesday, i * 37 % 600, i % 9, i % 3)
    write("rule_nlu", header + text.encode())
# The ends of chrono's range (top byte 0x7f / 0x80, see rule_nlu.rs), where date arithmetic
# overflows.
for i, text in enumerate(["next monday", "tuesday this week", "dec 31", "in 2 weeks"]):
    for top in (0x7F, 0x80):
        raw = struct.pack("<q", 5000)[:7] + bytes([top])
        write("rule_nlu", raw + struct.pack("<HBB", 100 * i + 3, 0, 0) + text.encode())
print({p.name: len(list(p.iterdir())) for p in (here / "seeds").iterdir()})
