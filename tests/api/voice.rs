//! A phone call: greeting, spoken turns through `<Gather>`, a booking, and a transfer to staff.

use chrono::Weekday;

use quick_xml::events::Event;

use crate::helpers::{AUTH_TOKEN, phone, spawn_app, upcoming};

/// The element names of a TwiML document in document order, after checking that it is
/// well-formed XML whose root is `<Response>` (every TwiML Sara answers goes through this).
pub fn twiml_elements(xml: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut names = Vec::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                names.push(AsRef::<str>::as_ref(&e.name()).to_string());
                depth += 1;
            }
            Ok(Event::Empty(e)) => names.push(AsRef::<str>::as_ref(&e.name()).to_string()),
            Ok(Event::End(_)) => depth -= 1,
            Ok(_) => {}
            Err(e) => panic!("TwiML is not well-formed XML ({e}): {xml}"),
        }
    }
    assert_eq!(depth, 0, "unclosed elements: {xml}");
    assert_eq!(names.first().map(String::as_str), Some("Response"), "{xml}");
    names
}

/// The value of attribute `name` on the first `<element>` of `xml`, unescaped.
pub fn attribute(xml: &str, element: &str, name: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e))
                if AsRef::<str>::as_ref(&e.name()) == element =>
            {
                return e
                    .attributes()
                    .flatten()
                    .find(|a| AsRef::<str>::as_ref(&a.key) == name)
                    .and_then(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                            .ok()
                            .map(|v| v.into_owned())
                    });
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn says(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Say>") {
        let after = &rest[i + 5..];
        let end = after.find("</Say>").unwrap_or(after.len());
        out.push_str(&quick_xml::escape::unescape(&after[..end]).unwrap_or_default());
        out.push(' ');
        rest = &after[end..];
    }
    out
}

#[tokio::test]
async fn a_caller_books_by_voice_with_the_name_spelled_back_and_corrected_and_a_repeated_gather_is_answered_once()
 {
    let sara = spawn_app().await;
    let me = phone(40);
    let call = [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("From", me.as_str()),
        ("To", "+15550100000"),
    ];
    let (status, xml) = sara.twilio("/webhook/voice", &call).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<Gather input=\"speech\""), "{xml}");
    assert!(
        xml.contains("action=\"https://sara.example.com/webhook/voice/gather?n=1\""),
        "{xml}"
    );
    assert!(says(&xml).contains("Harbor Street Clinic"));

    let (_, day_text) = upcoming(Weekday::Wed);
    let ask = format!("I'd like a consultation on {day_text} at 11am, my name is Ana Ruiz");
    let mut first = call.to_vec();
    first.extend([("SpeechResult", ask.as_str()), ("Confidence", "0.92")]);
    let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &first).await;
    assert_eq!(status, 200, "{xml}");
    // The heard name is spelled back before anything else.
    assert!(
        says(&xml).contains("That's A-N-A R-U-I-Z, is that right?"),
        "{xml}"
    );
    assert!(xml.contains("gather?n=2"), "{xml}");
    let said = |words: &'static str| {
        let mut params = call.to_vec();
        params.extend([("SpeechResult", words), ("Confidence", "0.88")]);
        params
    };
    // No: the caller spells it, and hears it spelled back again.
    let (_, spell) = sara.twilio("/webhook/voice/gather?n=2", &said("No.")).await;
    assert!(
        says(&spell).contains("spell your name for me, letter by letter"),
        "{spell}"
    );
    let (_, again) = sara
        .twilio("/webhook/voice/gather?n=3", &said("A-N-N-A R-U-I-Z"))
        .await;
    assert!(
        says(&again).contains("That's A-N-N-A R-U-I-Z, is that right?"),
        "{again}"
    );
    let (_, confirm) = sara
        .twilio("/webhook/voice/gather?n=4", &said("Yes."))
        .await;
    assert!(
        says(&confirm).contains("Anna Ruiz") && says(&confirm).contains("Shall I confirm it?"),
        "{confirm}"
    );
    assert!(sara.bookings().await.is_empty(), "nothing booked yet");

    let yes = said("Yes.");
    let (_, done) = sara.twilio("/webhook/voice/gather?n=5", &yes).await;
    assert!(says(&done).to_lowercase().contains("booked"), "{done}");
    let (_, again) = sara.twilio("/webhook/voice/gather?n=5", &yes).await;
    assert_eq!(says(&again), says(&done), "Twilio retried the same gather");
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0]["name"], "Anna Ruiz", "{bookings:?}");

    let (status, log) = sara
        .admin_get("/logs/CA0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, 200);
    let turns = log["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 5);
    assert!(turns.iter().all(|t| t["channel"] == "voice"));
}

#[tokio::test]
async fn asking_for_a_person_on_a_call_dials_the_staff_even_when_redelivered_and_silence_is_asked_again()
 {
    let sara = spawn_app().await;
    let me = phone(41);
    let call = [
        ("CallSid", "CAfeedface000000000000000000000000"),
        ("From", me.as_str()),
    ];
    let mut silent = call.to_vec();
    silent.push(("SpeechResult", ""));
    let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &silent).await;
    assert_eq!(status, 200);
    assert!(
        xml.contains("gather?n=1") && says(&xml).contains("didn't catch"),
        "{xml}"
    );

    let mut human = call.to_vec();
    human.push(("SpeechResult", "can I talk to a real person please"));
    let (status, xml) = sara.twilio("/webhook/voice/gather?n=1", &human).await;
    assert_eq!(status, 200);
    assert!(xml.contains(">+15550100000</Dial>"), "{xml}");
    assert_eq!(
        attribute(&xml, "Dial", "action").as_deref(),
        Some("https://sara.example.com/webhook/voice/dial"),
        "{xml}"
    );
    // Nothing after the <Dial>: its action decides (voicemail only when nobody answered).
    assert_eq!(
        twiml_elements(&xml).last().map(String::as_str),
        Some("Dial"),
        "{xml}"
    );

    // Twilio delivers the same gather again (a timeout on its side): the caller is put
    // through again, not asked for another turn.
    let (status, again) = sara.twilio("/webhook/voice/gather?n=1", &human).await;
    assert_eq!(status, 200);
    assert_eq!(again, xml, "a re-delivered gather gets the same TwiML");
    assert!(!again.contains("<Gather"), "{again}");

    let (status, _) = sara
        .twilio(
            "/webhook/voice/status",
            &[
                ("CallSid", "CAfeedface000000000000000000000000"),
                ("CallStatus", "completed"),
            ],
        )
        .await;
    assert_eq!(status, 204);
    let forged = sara
        .post_form(
            "/webhook/voice",
            &[("CallSid".into(), "CA1".into())],
            Some("Zm9yZ2Vk"),
        )
        .await;
    assert_eq!(forged.0, 403);
}

#[tokio::test]
async fn every_gather_is_followed_by_a_redirect_and_three_silences_reach_the_team() {
    let sara = spawn_app().await;
    let me = phone(42);
    let call = [
        ("CallSid", "CA00000000000000000000000000000042"),
        ("From", me.as_str()),
    ];
    let (_, hello) = sara.twilio("/webhook/voice", &call).await;
    let verbs = twiml_elements(&hello);
    assert_eq!(verbs, ["Response", "Gather", "Say", "Redirect"], "{hello}");
    assert_eq!(
        attribute(&hello, "Gather", "hints").as_deref(),
        Some("Consultation,Cleaning,Whitening"),
        "the services' names help the recognizer: {hello}"
    );
    // Silence: Twilio goes on to the <Redirect>, which names the same gather once more quiet.
    let redirect = "/webhook/voice/gather?n=1&quiet=1";
    assert!(
        hello.contains(&format!(
            "https://sara.example.com{}",
            redirect.replace('&', "&amp;")
        )),
        "{hello}"
    );
    let (status, first) = sara.twilio(redirect, &call).await;
    assert_eq!(status, 200, "{first}");
    assert!(says(&first).contains("didn't catch"), "{first}");
    assert_eq!(
        twiml_elements(&first).last().map(String::as_str),
        Some("Redirect")
    );
    let (_, second) = sara
        .twilio("/webhook/voice/gather?n=1&quiet=2", &call)
        .await;
    assert!(says(&second).contains("didn't catch"), "{second}");
    assert!(second.contains("quiet=3"), "{second}");
    let (_, third) = sara
        .twilio("/webhook/voice/gather?n=1&quiet=3", &call)
        .await;
    assert!(
        twiml_elements(&third).contains(&"Dial".to_string()),
        "{third}"
    );
    assert!(!third.contains("<Gather"), "{third}");
}

#[tokio::test]
async fn words_twilio_was_unsure_of_are_asked_again_twice_then_the_team() {
    let sara = spawn_app().await;
    let me = phone(43);
    let mut unclear = vec![
        ("CallSid", "CA00000000000000000000000000000043"),
        ("From", me.as_str()),
        ("SpeechResult", "cancel my appointment"),
        ("Confidence", "0.12"),
    ];
    let (_, first) = sara.twilio("/webhook/voice/gather?n=1", &unclear).await;
    twiml_elements(&first);
    assert!(says(&first).contains("say it again"), "{first}");
    assert_eq!(
        attribute(&first, "Gather", "action").as_deref(),
        Some("https://sara.example.com/webhook/voice/gather?n=1&unsure=1"),
        "the same gather: no turn was spent: {first}"
    );
    let (_, second) = sara
        .twilio("/webhook/voice/gather?n=1&unsure=1", &unclear)
        .await;
    assert!(says(&second).contains("say it again"), "{second}");
    let (_, third) = sara
        .twilio("/webhook/voice/gather?n=1&unsure=2", &unclear)
        .await;
    assert!(
        twiml_elements(&third).contains(&"Dial".to_string()),
        "{third}"
    );
    let (status, _) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(status, 404, "unclear words never became a turn");

    // A clear answer after a re-prompt is a turn under the same gather number.
    unclear[3] = ("Confidence", "0.91");
    unclear[2] = ("SpeechResult", "what are your opening hours");
    let (_, clear) = sara
        .twilio("/webhook/voice/gather?n=1&unsure=1", &unclear)
        .await;
    assert!(clear.contains("gather?n=2"), "{clear}");
    let (_, log) = sara
        .admin_get("/logs/CA00000000000000000000000000000043")
        .await;
    assert_eq!(
        log["turns"][0]["provider_id"],
        "CA00000000000000000000000000000043:1"
    );
}

#[tokio::test]
async fn a_finished_staff_call_hangs_up_and_an_unanswered_one_takes_a_voicemail_of_its_own() {
    let sara = spawn_app().await;
    let me = phone(44);
    let call = [
        ("CallSid", "CA00000000000000000000000000000044"),
        ("From", me.as_str()),
    ];
    let mut answered = call.to_vec();
    answered.push(("DialCallStatus", "completed"));
    let (status, done) = sara.twilio("/webhook/voice/dial", &answered).await;
    assert_eq!(status, 200);
    assert_eq!(twiml_elements(&done), ["Response", "Hangup"], "{done}");

    let mut unanswered = call.to_vec();
    unanswered.push(("DialCallStatus", "no-answer"));
    let (_, xml) = sara.twilio("/webhook/voice/dial", &unanswered).await;
    assert_eq!(
        twiml_elements(&xml),
        ["Response", "Say", "Record", "Say", "Hangup"],
        "{xml}"
    );
    assert_eq!(
        attribute(&xml, "Record", "action").as_deref(),
        Some("https://sara.example.com/webhook/voice/recording")
    );
    assert_eq!(
        attribute(&xml, "Record", "recordingStatusCallback").as_deref(),
        Some("https://sara.example.com/webhook/voice/recording/status")
    );
    assert!(
        !xml.contains("gather"),
        "a recording never reaches a gather URL: {xml}"
    );

    let mut recorded = call.to_vec();
    recorded.extend([
        ("RecordingSid", "RE00000000000000000000000000000044"),
        ("RecordingUrl", "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE00000000000000000000000000000044"),
        ("RecordingDuration", "7"),
    ]);
    let (status, bye) = sara.twilio("/webhook/voice/recording", &recorded).await;
    assert_eq!(status, 200);
    assert_eq!(twiml_elements(&bye), ["Response", "Say", "Hangup"], "{bye}");

    // The status callback and the transcription fill in the same voicemail.
    let mut done = recorded.clone();
    done.push(("RecordingStatus", "completed"));
    let (status, _) = sara.twilio("/webhook/voice/recording/status", &done).await;
    assert_eq!(status, 204);
    let mut text = call.to_vec();
    text.extend([
        ("RecordingSid", "RE00000000000000000000000000000044"),
        ("TranscriptionStatus", "completed"),
        (
            "TranscriptionText",
            "Hi, it's Ana, please call me back about Friday.",
        ),
    ]);
    let (status, _) = sara
        .twilio("/webhook/voice/recording/transcription", &text)
        .await;
    assert_eq!(status, 204);
    let (status, log) = sara
        .admin_get("/logs/CA00000000000000000000000000000044")
        .await;
    assert_eq!(status, 200, "{log}");
    let voicemails = log["voicemails"].as_array().expect("voicemails");
    assert_eq!(voicemails.len(), 1, "{log}");
    assert_eq!(voicemails[0]["recording_url"], recorded[3].1, "{log}");
    assert_eq!(voicemails[0]["duration_s"], 7);
    assert_eq!(
        voicemails[0]["transcription"],
        "Hi, it's Ana, please call me back about Friday."
    );
    // The caller's conversation shows it too.
    let (_, by_phone) = sara.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(by_phone["voicemails"], log["voicemails"]);
    // A forged callback stores nothing.
    let forged: Vec<(String, String)> = done
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (status, _) = sara
        .post_form("/webhook/voice/recording/status", &forged, Some("Zm9yZ2Vk"))
        .await;
    assert_eq!(status, 403);
}

/// Signs `params` for `url` with Twilio's own `RequestValidator` (the `twilio` PyPI library);
/// `None` where the conformance venv is absent outside CI (see `sara::channels::conformance`).
async fn twilio_library_signature(url: &str, params: &[(&str, &str)]) -> Option<String> {
    let form: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let report = sara::channels::conformance::run_async(
        vec![
            "twilio-sign".into(),
            AUTH_TOKEN.into(),
            url.into(),
            "HMAC_SHA1".into(),
        ],
        serde_json::to_vec(&form).expect("json"),
    )
    .await?;
    assert_eq!(report["valid"], true, "{report}");
    Some(report["signature"].as_str().expect("signature").to_string())
}

#[tokio::test]
async fn signatures_of_twilios_own_validator_are_accepted_with_and_without_the_default_port() {
    let sara = spawn_app().await;
    let me = phone(45);
    let call = [
        ("CallSid", "CA00000000000000000000000000000045"),
        ("From", me.as_str()),
    ];
    let owned: Vec<(String, String)> = call
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for url in [
        "https://sara.example.com/webhook/voice",
        "https://sara.example.com:443/webhook/voice",
    ] {
        let Some(signature) = twilio_library_signature(url, &call).await else {
            return;
        };
        let (status, xml) = sara
            .post_form("/webhook/voice", &owned, Some(&signature))
            .await;
        assert_eq!(status, 200, "signed for {url}: {xml}");
        twiml_elements(&xml);
        // Tampered: the same signature over another caller, or another path.
        let mut other = owned.clone();
        other[1].1 = phone(46);
        let (status, _) = sara
            .post_form("/webhook/voice", &other, Some(&signature))
            .await;
        assert_eq!(status, 403, "tampered parameters for {url}");
        let (status, _) = sara
            .post_form("/webhook/voice/status", &owned, Some(&signature))
            .await;
        assert_eq!(status, 403, "another path for {url}");
    }
    // Another port than the default is not the public URL.
    let Some(signature) =
        twilio_library_signature("https://sara.example.com:8443/webhook/voice", &call).await
    else {
        return;
    };
    let (status, _) = sara
        .post_form("/webhook/voice", &owned, Some(&signature))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_voicemail_alerts_the_staff_by_email_once_through_the_outbox() {
    let (smtp, mut mail) = crate::email::smtp_stand_in().await;
    let sara = crate::helpers::spawn_app_with(|config| {
        config.email.smtp_url = Some(sara::config::Secret::new(smtp.as_str()));
        config.email.from = Some("Sara <sara@harbor.example>".into());
        config.email.staff = Some("front@harbor.example".into());
    })
    .await;
    let me = phone(47);
    let recording = [
        ("CallSid", "CA00000000000000000000000000000047"),
        ("From", me.as_str()),
        ("RecordingSid", "RE00000000000000000000000000000047"),
        (
            "RecordingUrl",
            "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE00000000000000000000000000000047",
        ),
        ("RecordingDuration", "12"),
    ];
    let (status, _) = sara.twilio("/webhook/voice/recording", &recording).await;
    assert_eq!(status, 200);
    let mut completed = recording.to_vec();
    completed.push(("RecordingStatus", "completed"));
    let (status, _) = sara
        .twilio("/webhook/voice/recording/status", &completed)
        .await;
    assert_eq!(status, 204);

    let (to, data) = tokio::time::timeout(std::time::Duration::from_secs(15), mail.recv())
        .await
        .expect("the alert is sent")
        .expect("stand-in alive");
    assert_eq!(to, ["front@harbor.example"]);
    assert!(data.contains(&me), "the alert names the caller: {data}");
    // The body is quoted-printable: its soft line breaks removed, the recording's URL.
    let body = data.replace("=\n", "");
    assert!(
        body.contains("Recordings/RE00000000000000000000000000000047"),
        "{data}"
    );
    let (_, outbox) = sara.admin_get("/admin/outbox").await;
    let alerts: Vec<&serde_json::Value> = outbox
        .as_array()
        .expect("list")
        .iter()
        .filter(|row| row["kind"] == "staff_alert")
        .collect();
    assert_eq!(alerts.len(), 1, "one alert for two callbacks: {outbox}");
}
