//! Every metric Sara exports, with its kind and the `# HELP` line `/metrics` shows for it
//! (`promtool check metrics` wants one per family). A metric used in code but missing here
//! fails `every_metric_in_the_code_is_described`.

/// What kind of Prometheus family a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Name, kind and help text of every metric, the dashboards' and alerts' vocabulary
/// (deploy/).
pub const CATALOG: &[(&str, Kind, &str)] = &[
    (
        "sara_turns_total",
        Kind::Counter,
        "Conversation turns committed (all channels).",
    ),
    (
        "sara_turn_seconds",
        Kind::Histogram,
        "Time from a turn reaching the engine to its committed reply, in seconds.",
    ),
    (
        "sara_turn_stage_seconds",
        Kind::Histogram,
        "Time a turn spent in one stage (label stage: front, queue, lease, load, understand, calendar, commit_wait, commit), in seconds.",
    ),
    (
        "sara_commit_batch_size",
        Kind::Histogram,
        "Turns committed together in one group-commit transaction.",
    ),
    (
        "sara_nlu_fallbacks_total",
        Kind::Counter,
        "Turns the model could not answer in time or at all, understood by the rules instead.",
    ),
    (
        "sara_nlu_breaker_open",
        Kind::Gauge,
        "1 while the model's circuit breaker is open (every turn uses the rules), else 0.",
    ),
    (
        "sara_live_conversations",
        Kind::Gauge,
        "Conversation actors alive in this instance (not passivated).",
    ),
    (
        "sara_actor_restarts_total",
        Kind::Counter,
        "Engine actors restarted by their supervisor after a failure, all kinds.",
    ),
    (
        "sara_actor_restarts_by_kind_total",
        Kind::Counter,
        "Engine actors restarted by their supervisor, by kind of actor (label actor).",
    ),
    (
        "sara_duplicate_webhooks_total",
        Kind::Counter,
        "Webhooks a provider delivered again, answered from the processed-webhook cache.",
    ),
    (
        "sara_rate_limited_total",
        Kind::Counter,
        "Requests refused by a rate limit, by kind (phone, bad_signature, admin_token).",
    ),
    (
        "sara_admin_auth_failures_total",
        Kind::Counter,
        "Admin requests with a missing or wrong token or session.",
    ),
    (
        "sara_connections_refused_total",
        Kind::Counter,
        "Connections answered 503 because the connection cap was reached.",
    ),
    (
        "sara_connections_evicted_total",
        Kind::Counter,
        "Idle connections closed to make room under the connection cap.",
    ),
    (
        "sara_heap_trim_seconds",
        Kind::Histogram,
        "Time one trim of the heap took on its blocking thread (glibc's malloc_trim and the look at the heap after it), in seconds.",
    ),
    (
        "sara_heap_trims_total",
        Kind::Counter,
        "Times freed heap memory was given back to the OS, by why (passivated, retained).",
    ),
    (
        "sara_redis_errors_total",
        Kind::Counter,
        "Redis operations that failed (the cache falls back or the turn runs unfenced).",
    ),
    (
        "sara_outbox_backlog",
        Kind::Gauge,
        "Outbox messages waiting to be sent (pending), as last seen by the relay.",
    ),
    (
        "sara_outbox_sent_total",
        Kind::Counter,
        "Outbox messages a provider accepted, by channel.",
    ),
    (
        "sara_retention_redacted_turns_total",
        Kind::Counter,
        "Turns whose message text the daily retention run redacted (older than privacy.retention_days).",
    ),
    (
        "sara_outbox_dead_total",
        Kind::Counter,
        "Outbox messages given up after the configured time or refused for good, by channel.",
    ),
    (
        "sara_outbox_fallbacks_total",
        Kind::Counter,
        "Failed WhatsApp messages sent again on another channel, by that channel.",
    ),
    (
        "sara_outbox_record_seconds",
        Kind::Histogram,
        "From a provider accepting an outbox message to Sara recording it sent, in seconds (the window in which a crash sends it again).",
    ),
    (
        "sara_outbox_withheld_total",
        Kind::Counter,
        "Outbox messages never sent because the recipient opted out (SMS STOP), by channel.",
    ),
    (
        "sara_delivery_reports_total",
        Kind::Counter,
        "Delivery reports received from providers, by channel and status.",
    ),
    (
        "sara_withheld_number_calls_total",
        Kind::Counter,
        "Calls and messages from a withheld number, put through to staff.",
    ),
    (
        "sara_unverified_caller_handovers_total",
        Kind::Counter,
        "Voice moves and cancels handed to staff because the caller id was not verified.",
    ),
    (
        "sara_reminders_sent_total",
        Kind::Counter,
        "Appointment reminders a provider accepted.",
    ),
    (
        "sara_relay_sessions",
        Kind::Gauge,
        "ConversationRelay WebSocket sessions (voice calls in relay mode) open now.",
    ),
    (
        "sara_relay_calls_total",
        Kind::Counter,
        "Voice calls answered in ConversationRelay mode.",
    ),
    (
        "sara_relay_reply_seconds",
        Kind::Histogram,
        "Relay mode: time from a caller's finished utterance to Sara's reply being ready, in seconds.",
    ),
    (
        "sara_relay_fillers_total",
        Kind::Counter,
        "Relay mode: filler lines said because a reply was not ready within voice.filler_ms.",
    ),
    (
        "sara_relay_apologies_total",
        Kind::Counter,
        "Relay mode: apologies with the offer of a person because a reply missed the voice deadline.",
    ),
    (
        "sara_relay_interrupts_total",
        Kind::Counter,
        "Relay mode: replies the caller talked over.",
    ),
    (
        "sara_relay_dtmf_handovers_total",
        Kind::Counter,
        "Relay mode: callers who pressed 0 to reach staff.",
    ),
    (
        "sara_voice_low_confidence_total",
        Kind::Counter,
        "Gather mode: transcripts below voice.min_confidence, asked again.",
    ),
    (
        "sara_voice_reprompt_handovers_total",
        Kind::Counter,
        "Gather mode: calls put through to staff after repeated silence or unclear speech.",
    ),
    (
        "sara_calendar_sync_errors_total",
        Kind::Counter,
        "Google calendar syncs (reading staff's changes back) that failed; tried again at the next interval.",
    ),
    (
        "sara_calendar_sync_changes_total",
        Kind::Counter,
        "Bookings changed by a Google calendar sync because staff moved or deleted their event, by change (moved, cancelled).",
    ),
    (
        "sara_calendar_write_retries_total",
        Kind::Counter,
        "Retried Google writes of held bookings, by outcome (confirmed, failed = tried again later, given_up).",
    ),
    (
        "sara_voicemails_total",
        Kind::Counter,
        "Voicemails recorded and stored.",
    ),
];

/// Describes every metric to the installed recorder (the `# HELP` and `# TYPE` lines).
pub fn describe_all() {
    for &(name, kind, help) in CATALOG {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(name, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, help),
            Kind::Histogram => ::metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::CATALOG;

    #[test]
    fn every_metric_is_described_once() {
        let mut names: Vec<&str> = CATALOG.iter().map(|(name, _, _)| *name).collect();
        names.sort_unstable();
        let mut twice: Vec<&str> = names
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        twice.dedup();
        assert!(twice.is_empty(), "described twice: {twice:?}");
    }

    /// The metric names the code uses: every string literal `"sara_…"` right after a
    /// `counter!(`, `gauge!(` or `histogram!(` (on the same line or the next).
    fn names_in(dir: &Path, found: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                names_in(&path, found);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for macro_call in ["counter!(", "gauge!(", "histogram!("] {
                for (at, _) in text.match_indices(macro_call) {
                    let rest = text[at + macro_call.len()..].trim_start();
                    if let Some(quoted) = rest.strip_prefix('"')
                        && let Some(end) = quoted.find('"')
                        && quoted[..end].starts_with("sara_")
                    {
                        found.push((quoted[..end].to_string(), path.display().to_string()));
                    }
                }
            }
        }
    }

    #[test]
    fn every_metric_in_the_code_is_described() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        names_in(&root.join("src"), &mut found);
        names_in(&root.join("actors/src"), &mut found);
        assert!(
            found.len() > 10,
            "the scan found too few metrics: {found:?}"
        );
        for (name, file) in found {
            assert!(
                CATALOG.iter().any(|(n, _, _)| *n == name),
                "{name} (used in {file}) is not described in telemetry::metrics::CATALOG"
            );
        }
    }

    /// The dashboard and the alert rules speak of metrics Sara exports, under their names.
    #[test]
    fn the_dashboard_and_the_alerts_name_only_described_metrics() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in ["deploy/grafana/sara.json", "deploy/prometheus/alerts.yml"] {
            let text = std::fs::read_to_string(root.join(file)).expect("deploy file");
            let mut named = 0;
            for (at, _) in text.match_indices("sara_") {
                // Only where a name starts (not inside `up{job="sara"}` or a uid).
                if text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    continue;
                }
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name);
                assert!(
                    CATALOG.iter().any(|(n, _, _)| n == &family),
                    "{file} names {name}, which Sara does not export"
                );
                named += 1;
            }
            assert!(named > 5, "{file} names too few metrics");
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for (name, kind, help) in CATALOG {
            assert!(name.starts_with("sara_"), "{name}");
            assert!(!help.is_empty() && help.ends_with('.'), "{name}: {help}");
            if *kind == super::Kind::Counter {
                assert!(
                    name.ends_with("_total"),
                    "a counter ends with _total: {name}"
                );
            }
        }
    }
}
