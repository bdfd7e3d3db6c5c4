//! `POST /webhook/sms`: Twilio's SMS webhook. Signature first, then parse, then one engine
//! turn; the reply goes back in the TwiML body.

use axum::Router;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use sara_actors::engine::Inbound;
use sara_actors::model::{Channel, Phone};

use super::webhook::{caller_reply, clip, param, verified_twilio_form};
use super::{ApiError, AppState};
use crate::channels::twilio::TwiML;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhook/sms", post(sms))
}

pub fn twiml(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

async fn sms(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = match verified_twilio_form(&app, &uri, &headers, &body) {
        Ok(params) => params,
        Err(refused) => return Err(super::limits::refuse_unsigned(&app, peer, refused).await),
    };
    let phone = param(&params, "From")
        .and_then(Phone::parse)
        .ok_or_else(|| ApiError::bad_request("From must be a phone number"))?;
    super::limits::check_phone(&app, &phone).await?;
    let inbound = Inbound {
        phone,
        channel: Channel::Sms,
        text: clip(param(&params, "Body").unwrap_or_default()),
        provider_id: param(&params, "MessageSid")
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(64).collect()),
        at: Utc::now(),
    };
    // A webhook already processed is answered from the cache without touching the engine;
    // a miss (or Redis down) goes on to the engine, whose store has the final word.
    if let Some(id) = &inbound.provider_id
        && let Some(text) = app.cache.processed_reply(id).await
    {
        metrics::counter!("sara_duplicate_webhooks_total").increment(1);
        let doc = if text.is_empty() {
            TwiML::new()
        } else {
            TwiML::new().message(&text)
        };
        return Ok(twiml(doc.render()));
    }
    let provider_id = inbound.provider_id.clone();
    let reply = caller_reply(app.engine.turn(inbound).await)?;
    if let Some(id) = &provider_id {
        // Only now, after the commit: the cache never claims an id before it is done.
        let text = if reply.silent {
            ""
        } else {
            reply.text.as_str()
        };
        app.cache.remember_reply(id, text).await;
    }
    let doc = if reply.silent || reply.text.is_empty() {
        TwiML::new()
    } else {
        TwiML::new().message(&reply.text)
    };
    Ok(twiml(doc.render()))
}
