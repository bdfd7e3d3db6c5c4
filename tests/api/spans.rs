//! One correlation id from the route to the commit: the conversation actor's `turn` span
//! continues the HTTP request's span (ractor's message span propagation), so every line a
//! turn logs carries the request's `request_id`.

use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::helpers::{phone, spawn_app};

/// A span's name and the names of the spans it sits in, innermost first.
type Opened = (String, Vec<String>);

/// Records every new span with its ancestry.
#[derive(Clone, Default)]
struct Ancestry(Arc<Mutex<Vec<Opened>>>);

impl<S> Layer<S> for Ancestry
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parents = span.scope().skip(1).map(|s| s.name().to_string()).collect();
        if let Ok(mut seen) = self.0.lock() {
            seen.push((span.name().to_string(), parents));
        }
    }
}

// One thread: the server, the actors and the client all run where the subscriber is set.
#[tokio::test(flavor = "current_thread")]
async fn a_turn_span_nests_in_its_http_request_span() {
    // tracing caches each callsite's interest process-wide. With this test's subscriber the
    // only one registered, a callsite first reached by another test's thread (no subscriber
    // there) was cached as never and its span never opened here: the request's `http` span
    // went missing about once in a few full runs. A global subscriber that records nothing
    // makes every later registration ask all subscribers, this one included.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    let seen = Ancestry::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let sara = spawn_app().await;
    let reply = sara
        .text(&phone(7101), "hi, what are your opening hours?")
        .await;
    assert!(!reply.is_empty());

    let spans = seen.0.lock().expect("recorded spans").clone();
    let turns: Vec<&Vec<String>> = spans
        .iter()
        .filter(|(name, _)| name == "turn")
        .map(|(_, parents)| parents)
        .collect();
    assert!(!turns.is_empty(), "no turn span was opened: {spans:?}");
    for parents in turns {
        assert!(
            parents.iter().any(|p| p == "http"),
            "a turn span outside its request's span: {parents:?}"
        );
    }
}
