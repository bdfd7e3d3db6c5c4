//! Voice over Twilio ConversationRelay (`voice.mode = "relay"`): the call start answers
//! `<Connect><ConversationRelay/></Connect>`, Twilio speaks the greeting at once and opens a
//! WebSocket to `GET /webhook/voice/relay`, where each finished utterance of the caller
//! (`prompt` with `last: true`) is one engine turn of the caller's conversation (the same
//! conversation as their texts). When the session ends Twilio posts to
//! `/webhook/voice/relay/end`, which dials staff after a hand-over.
//!
//! The handshake is refused (403) unless its `X-Twilio-Signature` signs the `wss://` URL it
//! was made to; that URL names the call (`?call=CallSid`), so a signature is good for one call
//! only, and the session's `setup` must be for that call. One session per call at a time.
//!
//! Never silent: a reply not ready after `voice.filler_ms` is preceded by a filler line, and
//! one still not ready at the voice deadline by an apology with the way to a person (the
//! reply still follows when it comes). An `interrupt` drops what was not yet said and records
//! what the caller heard (`utteranceUntilInterrupt`) on the turn. A `dtmf` digit answers a
//! question with choices (1 = the first: "Yes" for a yes/no), and 0 always reaches staff.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, OriginalUri, Query, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};

use sara_actors::dialogue::Reply;
use sara_actors::engine::Inbound;
use sara_actors::model::{Channel, Phone};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::sms::twiml;
use super::voice::{hints, public, put_through};
use super::webhook::{TwilioForm, answer, clip, is_sid, param, verify_twilio_signature};
use super::{ApiError, AppState, caller_id};
use crate::channels::twilio::{RelaySettings, TwiML};

/// The largest message Twilio's side may send (a prompt is a sentence or two).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How long a session waits for Twilio's `setup` after the handshake.
const SETUP_WAIT: Duration = Duration::from_secs(10);
/// How long after the voice deadline a turn still not answered gets the apology.
const APOLOGY_MARGIN: Duration = Duration::from_millis(500);
/// Said when a reply is slow (`voice.filler_ms`).
pub const FILLER: &str = "One moment while I check.";
/// Said when a reply is not ready by the voice deadline.
pub const APOLOGY: &str = "I'm sorry, this is taking longer than it should. \
     Please stay on the line, or press 0 to talk to the team.";

/// The `wss://` (or `ws://`) URL of the public URL, for `path_and_query`.
fn socket_url(app: &AppState, path_and_query: &str) -> String {
    let base = app.config.server.public_url.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{base}{path_and_query}")
}

/// The call start in relay mode: Twilio greets, then opens the session's WebSocket.
pub fn connect(app: &AppState, params: &[(String, String)]) -> Result<Response, ApiError> {
    let call = super::webhook::required_sid(params, "CallSid", &["CA"])?;
    let mut path = format!("/webhook/voice/relay?call={call}");
    if caller_id::verified_by_twilio(params) {
        path.push_str("&caller=verified");
    }
    let url = socket_url(app, &path);
    let voice = &app.config.voice;
    let greeting = sara_actors::dialogue::greeting(app.engine.business(), Channel::Voice);
    let hints = hints(app);
    let doc = TwiML::new().connect_relay(
        &public(app, "/webhook/voice/relay/end"),
        &RelaySettings {
            url: &url,
            welcome_greeting: &greeting.text,
            hints: &hints,
            language: &voice.language,
            tts_provider: &voice.tts_provider,
            voice: voice.voice.as_deref(),
            transcription_provider: &voice.transcription_provider,
        },
    );
    metrics::counter!("sara_relay_calls_total").increment(1);
    Ok(twiml(doc.render()))
}

/// `POST /webhook/voice/relay/end`: the session ended. After a hand-over (`HandoffData`
/// with `"reason": "handover"`) the caller is put through to staff, voicemail when nobody
/// answers; otherwise the call ends.
#[utoipa::path(
    post,
    path = "/webhook/voice/relay/end",
    tag = "twilio",
    security(("twilio_signature" = [])),
    request_body(content = super::openapi::RelayEndForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML: `<Dial>` to staff after a hand-over, `<Hangup/>` otherwise", content_type = "text/xml", body = String),
        (status = 400, description = "A parameter repeats", body = super::openapi::ErrorBody),
    )
)]
pub async fn ended(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<Response, ApiError> {
    let handoff = param(&params, "HandoffData")
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .unwrap_or_default();
    tracing::info!(
        status = param(&params, "SessionStatus").unwrap_or("unknown"),
        reason = handoff["reason"].as_str().unwrap_or("none"),
        "relay session ended"
    );
    if handoff["reason"] == "handover" {
        return Ok(twiml(put_through(&app, TwiML::new()).render()));
    }
    Ok(twiml(TwiML::new().hangup().render()))
}

/// The session's call, in the WebSocket URL Sara's `<Connect>` named.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RelayQuery {
    /// The CallSid.
    call: Option<String>,
    /// `verified` when the call start's caller ID was verified.
    caller: Option<String>,
}

/// Calls with a live session (one session per call).
static LIVE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// A call's place in [`LIVE`], given back when the session ends.
struct LiveCall(String);

impl LiveCall {
    fn claim(call: &str) -> Option<LiveCall> {
        let mut live = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        live.insert(call.to_string())
            .then(|| LiveCall(call.to_string()))
    }
}

impl Drop for LiveCall {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        live.remove(&self.0);
    }
}

/// `GET /webhook/voice/relay`: the signed WebSocket handshake from Twilio.
#[utoipa::path(
    get,
    path = "/webhook/voice/relay",
    tag = "twilio",
    security(("twilio_signature" = [])),
    params(RelayQuery),
    responses(
        (status = 101, description = "Switching to the ConversationRelay WebSocket"),
        (status = 400, description = "Not a WebSocket handshake, or `call` is not a call sid", body = super::openapi::ErrorBody),
        (status = 409, description = "The call already has a relay session", body = super::openapi::ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = super::openapi::ErrorBody),
    )
)]
pub async fn handshake(
    State(app): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<RelayQuery>,
    extensions: Extensions,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let Err(refused) = verify_twilio_signature(&app, &headers, &socket_url(&app, path), &[]) {
        return Err(match extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => super::limits::refuse_unsigned(&app, *peer, refused).await,
            None => refused,
        });
    }
    let upgrade = upgrade
        .map_err(|rejection| ApiError::rejected(rejection.status(), rejection.body_text()))?;
    let call = query
        .call
        .filter(|c| is_sid(c, &["CA"]))
        .ok_or_else(|| ApiError::bad_request("call must be a CallSid"))?;
    let verified = query.caller.as_deref() == Some("verified");
    let Some(live) = LiveCall::claim(&call) else {
        return Err(ApiError::rejected(
            axum::http::StatusCode::CONFLICT,
            "this call already has a relay session",
        ));
    };
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            metrics::gauge!("sara_relay_sessions").increment(1.0);
            run(app, socket, call, verified).await;
            metrics::gauge!("sara_relay_sessions").decrement(1.0);
            drop(live);
        })
        .into_response())
}

/// What Twilio sends over the session.
#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "camelCase")]
enum FromTwilio {
    #[serde(rename_all = "camelCase")]
    Setup {
        call_sid: String,
        from: String,
    },
    #[serde(rename_all = "camelCase")]
    Prompt {
        voice_prompt: String,
        #[serde(default = "yes")]
        last: bool,
    },
    #[serde(rename_all = "camelCase")]
    Interrupt {
        #[serde(default)]
        utterance_until_interrupt: String,
    },
    Dtmf {
        digit: String,
    },
    Error {
        #[serde(default)]
        description: String,
    },
    #[serde(other)]
    Other,
}

fn yes() -> bool {
    true
}

/// A turn under way: its number in the call, when it started, and what has been said of it.
struct Pending {
    provider_id: String,
    started: Instant,
    filler_said: bool,
    apology_said: bool,
    /// The caller interrupted before the reply came: it is not said.
    interrupted: Option<String>,
}

/// A turn's reply, back from the engine.
struct Answered {
    provider_id: String,
    reply: Result<Reply, ApiError>,
}

struct Session {
    app: AppState,
    call: String,
    phone: Phone,
    verified: bool,
    /// Turns of this session so far (the provider id of turn `n` is `CallSid:rn`).
    turns: u32,
    pending: Option<Pending>,
    /// Utterances that arrived while a turn was under way, in order.
    queued: VecDeque<String>,
    /// The provider id and reply of the last reply said, for an interrupt and for DTMF.
    said: Option<(String, Reply)>,
    answers: mpsc::Sender<Answered>,
}

async fn send(socket: &mut WebSocket, message: serde_json::Value) -> bool {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .is_ok()
}

/// `text` as the sentences Twilio can start speaking one by one.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        if matches!(c, '.' | '?' | '!' | '\n') && chars.peek().is_none_or(|n| n.is_whitespace()) {
            if let Some(space) = chars.next_if(|n| n.is_whitespace()) {
                current.push(space);
            }
            if !current.trim().is_empty() {
                out.push(std::mem::take(&mut current));
            } else {
                current.clear();
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// Says `text` as `text` tokens, sentence by sentence, the last one with `last: true`.
async fn say(socket: &mut WebSocket, text: &str) -> bool {
    let parts = sentences(text);
    let count = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        let message = json!({"type": "text", "token": part, "last": i + 1 == count});
        if !send(socket, message).await {
            return false;
        }
    }
    count > 0 || send(socket, json!({"type": "text", "token": "", "last": true})).await
}

/// Ends the session for a hand-over: Twilio then posts the `handoffData` to the `<Connect>`
/// action, which dials staff.
async fn hand_over(socket: &mut WebSocket, call: &str, why: &str) -> bool {
    let data = json!({"reason": "handover", "callSid": call, "detail": why});
    send(
        socket,
        json!({"type": "end", "handoffData": data.to_string()}),
    )
    .await
}

/// The spoken form of a reply: its choices can be answered with the keypad too.
fn spoken(reply: &Reply) -> String {
    if reply.options.is_empty() || reply.options.len() > 9 || reply.handover || reply.end {
        return reply.text.clone();
    }
    let keys: Vec<String> = reply
        .options
        .iter()
        .enumerate()
        .map(|(i, option)| format!("{} for {option}", i + 1))
        .collect();
    format!("{} You can also press {}.", reply.text, keys.join(", "))
}

async fn run(app: AppState, mut socket: WebSocket, call: String, verified: bool) {
    // The session starts with Twilio's setup; anything else first is not Twilio.
    let setup = tokio::time::timeout(SETUP_WAIT, socket.recv()).await;
    let phone = match setup {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<FromTwilio>(&text) {
            Ok(FromTwilio::Setup { call_sid, from }) if call_sid == call => Phone::parse(&from),
            _ => {
                tracing::warn!("relay session without a matching setup; closing");
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        },
        _ => return,
    };
    let Some(phone) = phone else {
        // A withheld number: no conversation to keep; put the caller through.
        let _ = say(
            &mut socket,
            "I can't see your number, so I can't book or look up an appointment on this call. \
             I'll put you through to the team now.",
        )
        .await;
        let _ = hand_over(&mut socket, &call, "withheld number").await;
        return;
    };
    let (answers, mut answered) = mpsc::channel(4);
    let mut session = Session {
        app,
        call,
        phone,
        verified,
        turns: 0,
        pending: None,
        queued: VecDeque::new(),
        said: None,
        answers,
    };
    let filler = Duration::from_millis(session.app.config.voice.filler_ms);
    // The engine answers by the voice deadline (the rules, when the model is late); the
    // apology is for a turn that is late even so (a slow store, a stuck calendar).
    let deadline = (Duration::from_millis(session.app.config.ai.voice_deadline_ms)
        + APOLOGY_MARGIN)
        .max(filler);
    loop {
        let wake = session.pending.as_ref().and_then(|p| {
            if !p.filler_said {
                Some(p.started + filler)
            } else if !p.apology_said {
                Some(p.started + deadline)
            } else {
                None
            }
        });
        let keep_going = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => session.on_message(&mut socket, &text).await,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => false,
                Some(Ok(_)) => true,
            },
            Some(done) = answered.recv() => session.on_answer(&mut socket, done).await,
            () = sleep_until(wake), if wake.is_some() => session.on_slow(&mut socket).await,
        };
        if !keep_going {
            break;
        }
    }
    // A turn still under way finishes and commits on its own; nobody is left to hear it.
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// One message from Twilio; `false` ends the session.
    async fn on_message(&mut self, socket: &mut WebSocket, text: &str) -> bool {
        let message = match serde_json::from_str::<FromTwilio>(text) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "unreadable relay message ignored");
                return true;
            }
        };
        match message {
            FromTwilio::Prompt { voice_prompt, last } => {
                let words = voice_prompt.trim();
                if !last || words.is_empty() {
                    return true;
                }
                self.utterance(socket, clip(words)).await
            }
            FromTwilio::Interrupt {
                utterance_until_interrupt,
            } => {
                self.interrupted(utterance_until_interrupt).await;
                true
            }
            FromTwilio::Dtmf { digit } => self.digit(socket, digit.trim()).await,
            FromTwilio::Error { description } => {
                tracing::warn!(description, "ConversationRelay reported an error");
                true
            }
            FromTwilio::Setup { .. } | FromTwilio::Other => true,
        }
    }

    /// A finished utterance: a turn now, or after the one under way.
    async fn utterance(&mut self, socket: &mut WebSocket, words: String) -> bool {
        if self.pending.is_some() {
            self.queued.push_back(words);
            return true;
        }
        if !self.verified && caller_id::asks_to_change_a_booking(&self.app, &words) {
            metrics::counter!("sara_unverified_caller_handovers_total").increment(1);
            let _ = say(
                socket,
                "I can't confirm it's really you calling from this number, so I can't look up, \
                 move or cancel an appointment on this call. I'll put you through to the team now.",
            )
            .await;
            let _ = hand_over(socket, &self.call, "unverified caller").await;
            return false;
        }
        self.turns += 1;
        let provider_id = format!("{}:r{}", self.call, self.turns);
        let inbound = Inbound {
            phone: self.phone.clone(),
            channel: Channel::Voice,
            text: words,
            provider_id: Some(provider_id.clone()),
            at: self.app.clock.now(),
        };
        self.pending = Some(Pending {
            provider_id: provider_id.clone(),
            started: Instant::now(),
            filler_said: false,
            apology_said: false,
            interrupted: None,
        });
        let app = self.app.clone();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            let reply = answer(&app, inbound).await;
            let _ = answers.send(Answered { provider_id, reply }).await;
        });
        true
    }

    async fn on_answer(&mut self, socket: &mut WebSocket, done: Answered) -> bool {
        let Some(pending) = self.pending.take() else {
            return true;
        };
        if pending.provider_id != done.provider_id {
            self.pending = Some(pending);
            return true;
        }
        metrics::histogram!("sara_relay_reply_seconds").record(pending.started.elapsed());
        let reply = match done.reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(error = %error.detail(), "relay turn failed");
                Reply {
                    text: "I'm sorry, something went wrong on my side. \
                           Could you say that again? Or press 0 to talk to the team."
                        .into(),
                    ..Reply::default()
                }
            }
        };
        if let Some(heard) = pending.interrupted {
            // The caller spoke over the filler: the reply is not said, and the log shows what
            // they heard of this turn.
            self.record_heard(&pending.provider_id, &heard).await;
        } else {
            if reply.silent {
                // Staff have taken the conversation over: they take the call too.
                let _ = say(
                    socket,
                    "Someone from the team has your conversation. I'll put you through now.",
                )
                .await;
                let _ = hand_over(socket, &self.call, "staff have the conversation").await;
                return false;
            }
            if !say(socket, &spoken(&reply)).await {
                return false;
            }
            if reply.handover {
                let _ = hand_over(socket, &self.call, "asked for a person").await;
                return false;
            }
            if reply.end {
                let _ = send(
                    socket,
                    json!({"type": "end", "handoffData": json!({"reason": "goodbye"}).to_string()}),
                )
                .await;
                return false;
            }
        }
        self.said = Some((pending.provider_id, reply));
        match self.queued.pop_front() {
            Some(next) => self.utterance(socket, next).await,
            None => true,
        }
    }

    /// The reply is slow: a filler first, then at the voice deadline an apology and the way
    /// to a person.
    async fn on_slow(&mut self, socket: &mut WebSocket) -> bool {
        let Some(pending) = self.pending.as_mut() else {
            return true;
        };
        if pending.interrupted.is_some() {
            pending.filler_said = true;
            pending.apology_said = true;
            return true;
        }
        let line = if !pending.filler_said {
            pending.filler_said = true;
            metrics::counter!("sara_relay_fillers_total").increment(1);
            FILLER
        } else {
            pending.apology_said = true;
            metrics::counter!("sara_relay_apologies_total").increment(1);
            APOLOGY
        };
        say(socket, line).await
    }

    async fn interrupted(&mut self, heard: String) {
        metrics::counter!("sara_relay_interrupts_total").increment(1);
        let heard: String = heard.chars().take(2000).collect();
        if let Some(pending) = self.pending.as_mut() {
            pending.interrupted = Some(heard);
            return;
        }
        if let Some((provider_id, _)) = self.said.clone() {
            self.record_heard(&provider_id, &heard).await;
        }
    }

    async fn record_heard(&self, provider_id: &str, heard: &str) {
        if let Err(error) = self.app.db.record_heard(provider_id, heard).await {
            tracing::warn!(%error, "what the caller heard was not recorded");
        }
    }

    /// A key press: 0 always reaches staff; 1..n answers the choices of the last question.
    async fn digit(&mut self, socket: &mut WebSocket, digit: &str) -> bool {
        if digit == "0" {
            metrics::counter!("sara_relay_dtmf_handovers_total").increment(1);
            let _ = say(socket, "Putting you through to the team now.").await;
            let _ = hand_over(socket, &self.call, "pressed 0").await;
            return false;
        }
        let choice = digit
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.said.as_ref()?.1.options.get(i).cloned());
        match choice {
            Some(choice) => self.utterance(socket, choice).await,
            None if self.pending.is_some() => true,
            None => {
                say(
                    socket,
                    "Please say your answer, or press 0 to talk to the team.",
                )
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_said_sentence_by_sentence() {
        assert_eq!(
            sentences("Sure. Which day works? Friday!"),
            ["Sure. ", "Which day works? ", "Friday!"]
        );
        assert_eq!(sentences("It's 9.30 today"), ["It's 9.30 today"]);
        assert!(sentences("  ").is_empty());
    }

    #[test]
    fn twilio_messages_are_read_and_unknown_ones_tolerated() {
        let prompt: FromTwilio = serde_json::from_str(
            r#"{"type":"prompt","voicePrompt":"hi","lang":"en-US","last":true}"#,
        )
        .expect("prompt");
        assert!(matches!(prompt, FromTwilio::Prompt { last: true, .. }));
        let other: FromTwilio =
            serde_json::from_str(r#"{"type":"info","name":"x"}"#).expect("other");
        assert!(matches!(other, FromTwilio::Other));
        assert!(serde_json::from_str::<FromTwilio>(r#"{"type":"dtmf"}"#).is_err());
    }
}
