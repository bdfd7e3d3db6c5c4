//! Delivery reports about the messages Sara sent: `POST /webhook/sms/status` (Twilio's
//! message status callbacks) and the `statuses` of WhatsApp webhooks, both applied through
//! the [`DeliveryStatuses`](sara_actors::outbound::DeliveryStatuses) hook in
//! [`AppState::delivery`].

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use sara_actors::outbound::{DeliveryState, DeliveryStatuses, StatusUpdate};
use sara_actors::ports::{BoxFuture, StoreError};

use super::webhook::TwilioForm;
use super::{ApiError, AppState};
use crate::channels::twilio_rest;
use crate::store::Database;
use crate::store::outbox::DeliveryReport;

/// Delivery reports applied to the store's outbox rows, found by the provider's id.
pub struct OutboxStatuses(pub Database);

impl DeliveryStatuses for OutboxStatuses {
    fn record_status<'a>(
        &'a self,
        update: &'a StatusUpdate,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let report = match update.state {
                // The row became `sent` when the provider accepted it: nothing new.
                DeliveryState::Sent => return Ok(false),
                DeliveryState::Delivered => DeliveryReport::Delivered,
                DeliveryState::Read => DeliveryReport::Read,
                DeliveryState::Failed => DeliveryReport::Failed,
            };
            self.0
                .outbox()
                .update_status(update.channel, &update.provider_id, report)
                .await
        })
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route(twilio_rest::STATUS_CALLBACK_PATH, post(sms_status))
}

/// 204 for every well-formed, signed callback, also for a sid Sara does not know (Twilio
/// reports on messages other tools sent from the same account too).
async fn sms_status(
    State(app): State<AppState>,
    TwilioForm(params): TwilioForm,
) -> Result<StatusCode, ApiError> {
    let update = twilio_rest::status_update(&params).map_err(ApiError::bad_request)?;
    if let Some(update) = update {
        record(&app, &update).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Applies one delivery report. A store that cannot answer is a 503, so the provider sends
/// the report again; a report about an unknown message is counted and dropped.
pub async fn record(app: &AppState, update: &StatusUpdate) -> Result<(), ApiError> {
    let (channel, status) = (update.channel.as_str(), update.state.as_str());
    metrics::counter!("sara_delivery_reports_total", "channel" => channel, "status" => status)
        .increment(1);
    let Some(hook) = &app.delivery else {
        tracing::debug!(
            channel,
            status,
            "delivery report with no outbox to apply it to"
        );
        return Ok(());
    };
    match hook.record_status(update).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::debug!(channel, status, "delivery report about an unknown message");
            Ok(())
        }
        Err(error) => {
            tracing::warn!(%error, channel, "delivery report not recorded");
            Err(ApiError::unavailable("store unavailable; retry later").retry_after(5))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};
    use sara_actors::dialogue::Reply;
    use sara_actors::model::{Channel, Phone};
    use sara_actors::ports::{
        ConversationStore, OutboxKind, OutboxMessage, TurnCommit, TurnRecord,
    };

    use crate::store::testing::{on_postgres, on_sqlite};

    async fn reports_move_the_row_by_its_provider_id(db: Database) {
        let phone = Phone::parse("+15553009001").expect("phone");
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 30, 9, 0, 0)
            .single()
            .expect("time");
        let turn = TurnCommit {
            phone: phone.clone(),
            expected_version: 0,
            owner_epoch: 0,
            state: "{}".into(),
            turn: TurnRecord {
                channel: Channel::Sms,
                provider_id: Some("SMin1".into()),
                text: "hello".into(),
                reply: Reply {
                    text: "hi".into(),
                    ..Reply::default()
                },
                intent: "greet".into(),
                nlu: "rules".into(),
                understood: "{}".into(),
                at: t0,
                elapsed_ms: 1,
            },
            outbox: vec![OutboxMessage {
                contact: phone.clone(),
                recipient: phone.as_str().to_string(),
                channel: Channel::Sms,
                kind: OutboxKind::Reply,
                payload: "{}".into(),
                idempotency_key: "SMin1:0".into(),
                not_before: t0,
            }],
            jobs: Vec::new(),
        };
        db.commit(vec![turn]).await.expect("commit");
        let claimed = db
            .outbox()
            .claim_outbox(Channel::Sms, "relay-1", t0, t0 + Duration::minutes(1), 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        let sid = "SM0123456789abcdef0123456789abcdef";
        assert!(
            db.outbox()
                .mark_sent(claimed[0].id, "relay-1", sid, t0)
                .await
                .expect("sent")
        );
        let statuses = OutboxStatuses(db.clone());
        let report = |state, id: &str| StatusUpdate {
            channel: Channel::Sms,
            provider_id: id.to_string(),
            state,
            error: None,
            at: None,
        };
        let status = || async {
            db.outbox().list_outbox(10).await.expect("list")[0]
                .status
                .clone()
        };
        let record = |u: StatusUpdate| {
            let statuses = &statuses;
            async move { statuses.record_status(&u).await.expect("recorded") }
        };
        assert!(!record(report(DeliveryState::Sent, sid)).await);
        assert_eq!(status().await, "sent");
        assert!(record(report(DeliveryState::Delivered, sid)).await);
        assert_eq!(status().await, "delivered");
        assert!(!record(report(DeliveryState::Delivered, "SMunknown")).await);
        assert!(record(report(DeliveryState::Read, sid)).await);
        assert_eq!(status().await, "read");
        // A late report never moves it back.
        assert!(!record(report(DeliveryState::Delivered, sid)).await);
        assert_eq!(status().await, "read");
    }

    #[tokio::test]
    async fn reports_move_the_row_by_its_provider_id_on_sqlite() {
        on_sqlite(reports_move_the_row_by_its_provider_id).await;
    }

    #[tokio::test]
    async fn reports_move_the_row_by_its_provider_id_on_postgres() {
        on_postgres(reports_move_the_row_by_its_provider_id).await;
    }
}
