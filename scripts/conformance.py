#!/usr/bin/env python3
"""Sara's conformance checks with the reference libraries: Python's own `email` package, the
`icalendar` package (RFC 5545/5546) and Twilio's `twilio` helper library.

Run by the Rust tests (src/channels/conformance.rs) with the interpreter of the venv that
scripts/test creates (.venv-conformance). Each subcommand prints one JSON object.

  email                       a raw message on stdin → its headers, parts and invite, as
                              parsed by `email` and `icalendar`
  twilio-send BASE SID TOKEN FROM TO BODY CALLBACK
                              sends one SMS with Twilio's own REST client to BASE (a local
                              stand-in) and prints the sid it was given
  twilio-sign TOKEN URL ALGORITHM
                              the form parameters (JSON object) on stdin → the signature
                              Twilio's RequestValidator computes for URL (HMAC_SHA1 or
                              HMAC_SHA256) and whether it validates it
"""

import json
import sys


def email_report(raw: bytes) -> dict:
    import email
    import email.policy

    import icalendar

    message = email.message_from_bytes(raw, policy=email.policy.strict)
    report = {
        "defects": [type(d).__name__ for d in message.defects],
        "headers": {k: str(v) for k, v in message.items()},
        "message_id": str(message["Message-ID"]) if message["Message-ID"] else None,
        "parts": [],
        "invites": [],
        "longest_ics_line": 0,
    }
    for part in message.walk():
        report["defects"] += [type(d).__name__ for d in part.defects]
        ctype = part.get_content_type()
        report["parts"].append(
            {"type": ctype, "params": dict(part.get_params() or [])}
        )
        if ctype not in ("text/calendar", "application/ics"):
            continue
        data = part.get_payload(decode=True)
        lines = data.split(b"\r\n")
        report["longest_ics_line"] = max(
            [report["longest_ics_line"]] + [len(line) for line in lines]
        )
        report["bare_lf"] = report.get("bare_lf", False) or b"\n" in data.replace(b"\r\n", b"")
        cal = icalendar.Calendar.from_ical(data)
        invite = {
            "method": str(cal.get("METHOD")),
            "prodid": str(cal.get("PRODID")),
            "version": str(cal.get("VERSION")),
            "events": [],
            "timezones": [],
        }
        for tz in cal.walk("VTIMEZONE"):
            invite["timezones"].append(
                {
                    "tzid": str(tz["TZID"]),
                    "standard": len(tz.walk("STANDARD")),
                    "daylight": len(tz.walk("DAYLIGHT")),
                    "zoneinfo_ok": tz.to_tz() is not None,
                }
            )
        zones = {str(tz["TZID"]): tz.to_tz() for tz in cal.walk("VTIMEZONE")}
        for event in cal.walk("VEVENT"):
            start = event.decoded("DTSTART")
            end = event.decoded("DTEND")
            # The calendar's own VTIMEZONE must put the local times where zoneinfo does.
            own = zones.get(event["DTSTART"].params.get("TZID"))
            offsets_match = own is not None and all(
                own.utcoffset(t.replace(tzinfo=None)) == t.utcoffset() for t in (start, end)
            )
            attendees = event.get("ATTENDEE", [])
            if not isinstance(attendees, list):
                attendees = [attendees]
            organizer = event.get("ORGANIZER")
            invite["events"].append(
                {
                    "uid": str(event["UID"]),
                    "sequence": int(event.get("SEQUENCE", -1)),
                    "status": str(event.get("STATUS")),
                    "summary": str(event.get("SUMMARY")),
                    "location": str(event.get("LOCATION")) if event.get("LOCATION") else None,
                    "dtstamp_utc": event.decoded("DTSTAMP").isoformat(),
                    "dtstart_tzid": event["DTSTART"].params.get("TZID"),
                    "dtend_tzid": event["DTEND"].params.get("TZID"),
                    "dtstart_utc": start.astimezone(__import__("datetime").timezone.utc).isoformat(),
                    "dtend_utc": end.astimezone(__import__("datetime").timezone.utc).isoformat(),
                    "dtstart_local": start.replace(tzinfo=None).isoformat(),
                    "vtimezone_offsets_match": offsets_match,
                    "organizer": str(organizer) if organizer is not None else None,
                    "organizer_cn": organizer.params.get("CN") if organizer is not None else None,
                    "attendees": [str(a) for a in attendees],
                    "attendee_params": [dict(a.params) for a in attendees],
                }
            )
        report["invites"].append(invite)
    return report


def twilio_send(base, sid, token, sender, to, body, callback) -> dict:
    from twilio.rest import Client

    client = Client(sid, token)
    client.api.base_url = base
    kwargs = {"to": to, "body": body, "status_callback": callback}
    if sender.startswith("MG"):
        kwargs["messaging_service_sid"] = sender
    else:
        kwargs["from_"] = sender
    message = client.messages.create(**kwargs)
    return {"sid": message.sid}


def twilio_sign(token, url, algorithm, params) -> dict:
    """What Twilio's own helper library signs and accepts for `url` and the form `params`."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(token)
    signature = validator.compute_signature(url, params, algorithm)
    return {
        "signature": signature,
        "valid": validator.validate(url, params, signature, algorithm),
    }


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "email":
        report = email_report(sys.stdin.buffer.read())
    elif command == "twilio-sign" and len(sys.argv) == 5:
        report = twilio_sign(*sys.argv[2:], json.loads(sys.stdin.read()))
    elif command == "twilio-send" and len(sys.argv) == 9:
        report = twilio_send(*sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
