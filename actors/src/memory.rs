//! In-memory implementations of the store, calendar and knowledge-base ports, and a set of
//! ports built from them: for engine tests and the in-process benchmarks (no I/O, so they
//! measure the engine alone).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::dialogue::Reply;
use crate::engine::Ports;
use crate::model::{Booking, BookingId, BookingStatus, Interval, Phone};
use crate::ports::{
    BoxFuture, Calendar, CalendarError, CommitOutcome, ConversationStore, KnowledgeBase, Nlu,
    StoreError, StoredContact, StoredConversation, SystemClock, TurnCommit, TurnRecord,
};

#[derive(Default)]
struct Tables {
    conversations: HashMap<Phone, StoredConversation>,
    turns: Vec<(Phone, TurnRecord)>,
    replies: HashMap<String, Reply>,
    sms_opt_outs: HashSet<Phone>,
}

/// A store in memory. One mutex makes each batch atomic, as a transaction would.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn turns_of(&self, phone: &Phone) -> Vec<TurnRecord> {
        let t = self.tables.lock().expect("store lock poisoned");
        t.turns
            .iter()
            .filter(|(p, _)| p == phone)
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub fn turn_count(&self) -> usize {
        self.tables.lock().expect("store lock poisoned").turns.len()
    }
}

impl ConversationStore for MemoryStore {
    fn load_contact<'a>(
        &'a self,
        phone: &'a Phone,
    ) -> BoxFuture<'a, Result<StoredContact, StoreError>> {
        let t = self.tables.lock().expect("store lock poisoned");
        let found = StoredContact {
            conversation: t.conversations.get(phone).cloned(),
            sms_opted_out: t.sms_opt_outs.contains(phone),
        };
        Box::pin(async move { Ok(found) })
    }

    fn set_sms_opt_out<'a>(
        &'a self,
        phone: &'a Phone,
        out: bool,
        _at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut t = self.tables.lock().expect("store lock poisoned");
        let changed = if out {
            t.sms_opt_outs.insert(phone.clone())
        } else {
            t.sms_opt_outs.remove(phone)
        };
        Box::pin(async move { Ok(changed) })
    }

    fn commit(
        &self,
        batch: Vec<TurnCommit>,
    ) -> BoxFuture<'_, Result<Vec<CommitOutcome>, StoreError>> {
        let mut t = self.tables.lock().expect("store lock poisoned");
        let outcomes = batch
            .into_iter()
            .map(|c| {
                if let Some(reply) = c.turn.provider_id.as_ref().and_then(|id| t.replies.get(id)) {
                    return CommitOutcome::Duplicate {
                        reply: reply.clone(),
                    };
                }
                let (current, stored_epoch) = t
                    .conversations
                    .get(&c.phone)
                    .map_or((0, 0), |s| (s.version, s.owner_epoch));
                if c.owner_epoch > 0 && stored_epoch > c.owner_epoch {
                    return CommitOutcome::Fenced;
                }
                if current != c.expected_version {
                    return CommitOutcome::VersionConflict;
                }
                let version = current + 1;
                t.conversations.insert(
                    c.phone.clone(),
                    StoredConversation {
                        state: c.state,
                        version,
                        owner_epoch: stored_epoch.max(c.owner_epoch),
                    },
                );
                if let Some(id) = &c.turn.provider_id {
                    t.replies.insert(id.clone(), c.turn.reply.clone());
                }
                t.turns.push((c.phone, c.turn));
                CommitOutcome::Committed { version }
            })
            .collect();
        Box::pin(async move { Ok(outcomes) })
    }

    fn processed_reply<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Reply>, StoreError>> {
        let found = self
            .tables
            .lock()
            .expect("store lock poisoned")
            .replies
            .get(provider_id)
            .cloned();
        Box::pin(async move { Ok(found) })
    }
}

/// A calendar in memory that refuses overlapping confirmed bookings.
#[derive(Default)]
pub struct MemoryCalendar {
    bookings: Mutex<Vec<Booking>>,
}

impl MemoryCalendar {
    pub fn all(&self) -> Vec<Booking> {
        self.bookings
            .lock()
            .expect("calendar lock poisoned")
            .clone()
    }

    fn taken(list: &[Booking], except: BookingId, slot: Interval) -> bool {
        list.iter().any(|b| {
            b.id != except
                && b.status == BookingStatus::Confirmed
                && Interval {
                    start: b.start,
                    end: b.end,
                }
                .overlaps(&slot)
        })
    }
}

impl Calendar for MemoryCalendar {
    fn upcoming(&self, from: DateTime<Utc>) -> BoxFuture<'_, Result<Vec<Booking>, CalendarError>> {
        let list = self
            .all()
            .into_iter()
            .filter(|b| b.end > from && b.status != BookingStatus::Cancelled)
            .collect();
        Box::pin(async move { Ok(list) })
    }

    fn book<'a>(&'a self, booking: &'a Booking) -> BoxFuture<'a, Result<(), CalendarError>> {
        let mut list = self.bookings.lock().expect("calendar lock poisoned");
        let result = if list.iter().any(|b| b.id == booking.id) {
            Ok(())
        } else if Self::taken(
            &list,
            booking.id,
            Interval {
                start: booking.start,
                end: booking.end,
            },
        ) {
            Err(CalendarError::SlotTaken)
        } else {
            list.push(booking.clone());
            Ok(())
        };
        Box::pin(async move { result })
    }

    fn reschedule(
        &self,
        id: BookingId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<(), CalendarError>> {
        let mut list = self.bookings.lock().expect("calendar lock poisoned");
        let result = if Self::taken(&list, id, Interval { start, end }) {
            Err(CalendarError::SlotTaken)
        } else {
            match list
                .iter_mut()
                .find(|b| b.id == id && b.status != BookingStatus::Cancelled)
            {
                Some(b) => {
                    b.start = start;
                    b.end = end;
                    Ok(())
                }
                None => Err(CalendarError::NotFound),
            }
        };
        Box::pin(async move { result })
    }

    fn cancel(&self, id: BookingId) -> BoxFuture<'_, Result<(), CalendarError>> {
        let mut list = self.bookings.lock().expect("calendar lock poisoned");
        let result = match list.iter_mut().find(|b| b.id == id) {
            Some(b) => {
                b.status = BookingStatus::Cancelled;
                Ok(())
            }
            None => Err(CalendarError::NotFound),
        };
        Box::pin(async move { result })
    }
}

/// A knowledge base that knows nothing (every question goes to staff).
pub struct NoAnswers;

impl KnowledgeBase for NoAnswers {
    fn answer(&self, _: &str) -> Option<String> {
        None
    }
}

/// Ports with `nlu` and everything else in memory; the store is returned too, to inspect.
pub fn in_memory_ports(nlu: Arc<dyn Nlu>) -> (Ports, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let ports = Ports {
        nlu,
        fallback_nlu: None,
        knowledge: Arc::new(NoAnswers),
        calendar: Arc::new(MemoryCalendar::default()),
        store: store.clone(),
        clock: Arc::new(SystemClock),
        notifier: None,
        outbox: None,
    };
    (ports, store)
}
