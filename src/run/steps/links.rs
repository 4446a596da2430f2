//! Faults on the terminal's link to the host, from Gherkin: the same toxics as `poslab
//! proxy` and bench files (toxiproxy's names and attributes), seeded by the run's seed,
//! every decision journaled (`kind: "fault"`). They stand until the scenario ends or
//! `the link from the terminal to the host is healthy again`.

use cucumber::given;
use poslab_faults::ToxicSpec;
use serde_json::json;

use crate::run::world::PosWorld;

async fn add(w: &mut PosWorld, toxic: serde_json::Value) {
    let spec = ToxicSpec::from_json(toxic.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("fault {toxic}: {e}"));
    let b = w.bench().await;
    b.host_link_faults()
        .unwrap_or_else(|e| panic!("{e:#}"))
        .add(spec);
}

#[given(regex = r"^the link from the terminal to the host adds (\d+) ms(?: ± (\d+) ms)?$")]
async fn latency(w: &mut PosWorld, ms: u64, jitter: String) {
    let jitter: u64 = jitter.parse().unwrap_or(0);
    for stream in ["upstream", "downstream"] {
        add(
            w,
            json!({"name": format!("latency_{stream}"), "type": "latency", "stream": stream,
                      "attributes": {"latency": ms / 2, "jitter": jitter / 2}}),
        )
        .await;
    }
}

#[given(
    regex = r"^the link from the terminal to the host drops (\d+)% of packets(?: and adds (\d+) ms ± (\d+) ms)?$"
)]
async fn loss(w: &mut PosWorld, percent: u32, ms: String, jitter: String) {
    assert!(percent <= 100, "{percent}% is not a probability");
    for stream in ["upstream", "downstream"] {
        add(
            w,
            json!({"name": format!("loss_{stream}"), "type": "loss", "stream": stream,
                      "attributes": {"probability": f64::from(percent) / 100.0}}),
        )
        .await;
    }
    if let Ok(ms) = ms.parse::<u64>() {
        latency(w, ms, jitter).await;
    }
}

#[given(expr = "the link from the terminal to the host is cut after {int} messages")]
async fn cut_after(w: &mut PosWorld, n: u64) {
    add(
        w,
        json!({"name": "cut_upstream", "type": "cut", "stream": "upstream",
                  "attributes": {"after_chunks": n}}),
    )
    .await;
}

#[given(expr = "the link from the terminal to the host is down")]
async fn down(w: &mut PosWorld) {
    add(
        w,
        json!({"name": "down_upstream", "type": "down", "stream": "upstream"}),
    )
    .await;
}

#[given(expr = "the host's name does not resolve")]
async fn dns_failure(w: &mut PosWorld) {
    add(
        w,
        json!({"name": "dns_failure", "type": "dns_failure", "stream": "upstream"}),
    )
    .await;
}

#[given(expr = "the host refuses connections")]
async fn refuse(w: &mut PosWorld) {
    add(
        w,
        json!({"name": "refuse", "type": "refuse", "stream": "upstream"}),
    )
    .await;
}

#[given(expr = "the link from the terminal to the host flaps: up {int} ms, down {int} ms")]
async fn flapping(w: &mut PosWorld, up: u64, down: u64) {
    add(
        w,
        json!({"name": "flapping_upstream", "type": "flapping", "stream": "upstream",
                  "attributes": {"up": up, "down": down}}),
    )
    .await;
}

#[given(expr = "the link from the terminal to the host has the toxic {string}")]
async fn toxic(w: &mut PosWorld, json_text: String) {
    let v: serde_json::Value =
        serde_json::from_str(&json_text).unwrap_or_else(|e| panic!("toxic {json_text}: {e}"));
    add(w, v).await;
}

#[cucumber::when(expr = "the link from the terminal to the host is healthy again")]
async fn healthy(w: &mut PosWorld) {
    let b = w.bench().await;
    b.host_link_faults()
        .unwrap_or_else(|e| panic!("{e:#}"))
        .clear();
}
