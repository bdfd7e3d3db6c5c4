//! A crashing conversation actor and a killed server lose nothing that was committed.

use chrono::Weekday;

use crate::helpers::{ADMIN_TOKEN, Sara, phone, upcoming};

#[tokio::test]
async fn a_panicking_conversation_is_restarted_and_the_dialog_continues_where_it_was() {
    let sara = Sara::start().await;
    let me = phone(10);
    let (_, day_text) = upcoming(Weekday::Mon);
    let ask = sara
        .text(
            &me,
            &format!("Can I book a whitening on {day_text} at 11am? Jo Park"),
        )
        .await;
    assert!(ask.contains("Jo Park"), "{ask}");
    let before = sara.metric("sara_actor_restarts_total").await;
    let resp = sara
        .client
        .post(format!("{}/admin/debug/panic/{}", sara.base, me))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    // The restart is counted when the supervisor handles the failure; poll the metric.
    let mut after = before;
    for _ in 0..200 {
        after = sara.metric("sara_actor_restarts_total").await;
        if after > before {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(after > before, "restarts {before} -> {after}");
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
    assert_eq!(sara.bookings().await.len(), 1);
}

#[tokio::test]
async fn a_server_killed_mid_booking_continues_the_dialog_after_restart() {
    let sara = Sara::start().await;
    let me = phone(11);
    let (_, day_text) = upcoming(Weekday::Fri);
    let ask = sara
        .text(
            &me,
            &format!("I need a cleaning on {day_text} at 9am, this is Lee Chan"),
        )
        .await;
    assert!(ask.contains("Lee Chan"), "{ask}");
    let (dir, db) = sara.kill9();
    let sara = Sara::start_on(dir, db).await;
    let done = sara.text(&me, "yes").await;
    assert!(done.to_lowercase().contains("booked"), "{done}");
    let bookings = sara.bookings().await;
    assert_eq!(bookings.len(), 1);
    assert_eq!(bookings[0]["name"], "Lee Chan");
}
