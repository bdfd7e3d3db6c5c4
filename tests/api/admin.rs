//! The admin surface: who gets in (bearer token or the console's session cookie) and what an
//! error looks like.

use crate::helpers::{ADMIN_TOKEN, spawn_app};

#[tokio::test]
async fn admin_routes_take_the_bearer_token_or_the_dashboard_cookie_and_nothing_else() {
    let sara = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let get = |path: &str| client.get(format!("{}{path}", sara.base));

    let none = get("/admin/stats").send().await.expect("reaches sara");
    assert_eq!(none.status().as_u16(), 401);
    let body: serde_json::Value = none.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized");
    assert!(body["detail"].is_string(), "{body}");

    let wrong = get("/admin/stats")
        .bearer_auth("not-the-token")
        .send()
        .await;
    assert_eq!(wrong.expect("reaches sara").status().as_u16(), 401);
    let wrong = get("/admin?token=not-the-token").send().await;
    assert_eq!(wrong.expect("reaches sara").status().as_u16(), 401);

    // The dashboard link trades the token for a session in an HttpOnly cookie and a clean URL.
    let login = get(&format!("/admin?token={ADMIN_TOKEN}"))
        .send()
        .await
        .expect("reaches sara");
    assert!(login.status().is_redirection(), "{}", login.status());
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().expect("name=value").to_string();

    let page = get("/admin").header("cookie", &pair).send().await;
    let page = page.expect("reaches sara");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.expect("html").contains("<html"));
    let stats = get("/admin/stats").header("cookie", &pair).send().await;
    assert_eq!(stats.expect("reaches sara").status().as_u16(), 200);
    assert!(
        !pair.contains(ADMIN_TOKEN),
        "the cookie holds a session id: {pair}"
    );
    let forged = get("/admin")
        .header("cookie", "sara_session=guess")
        .send()
        .await;
    assert_eq!(forged.expect("reaches sara").status().as_u16(), 401);
    // The old cookie that held the token itself opens nothing any more.
    let old = get("/admin/stats")
        .header("cookie", format!("sara_admin={ADMIN_TOKEN}"))
        .send()
        .await;
    assert_eq!(old.expect("reaches sara").status().as_u16(), 401);

    let (status, stats) = sara.admin_get("/admin/stats").await;
    assert_eq!(status, 200);
    for key in [
        "conversations",
        "live_actors",
        "turns",
        "bookings",
        "restarts",
        "fallbacks",
    ] {
        assert!(!stats[key].is_null(), "{key} missing: {stats}");
    }
}
