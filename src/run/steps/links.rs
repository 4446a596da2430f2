//! Network faults on the bench's links, from Gherkin: the same toxics as `poslab proxy`
//! and bench files (toxiproxy's names and attributes), seeded by the run's seed, every
//! decision journaled (`kind: "fault"`). A link is named as a phrase (`the link from the
//! terminal to the host|printer|card reader|TMS`, `the link from the cash register to the
//! terminal`) or by its short name (`the "printer" link`; see `LiveBench::link_faults`).
//! Upstream is the terminal to its peer (and the cash register to the terminal).
//! A fault stands until the scenario ends, until `... is healthy again`, or, with the
//! suffix `for N seconds`, for that long.

use std::time::Duration;

use cucumber::given;
use poslab_faults::ToxicSpec;
use serde_json::json;

use crate::run::world::PosWorld;

/// The short link name of a phrase captured by the steps' link group.
pub fn link_name(phrase: &str) -> String {
    if let Some(quoted) = phrase.strip_prefix('"') {
        return quoted.split('"').next().unwrap_or("").to_string();
    }
    if phrase == "link from the cash register to the terminal" {
        return "ecr".into();
    }
    match phrase.rsplit("to the ").next().unwrap_or("") {
        "card reader" | "reader" => "reader".into(),
        "TMS" => "tms".into(),
        other => other.into(),
    }
}

/// Adds a toxic on `link`; with `secs`, removes it again that long after.
pub async fn add_on(w: &mut PosWorld, link: &str, toxic: serde_json::Value, secs: Option<u64>) {
    let spec = ToxicSpec::from_json(toxic.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("fault {toxic}: {e}"));
    let b = w.bench().await;
    let faults = b
        .link_faults(link)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .clone();
    let name = spec.name.clone();
    faults.add(spec);
    if let Some(secs) = secs {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            faults.remove(&name);
        });
    }
}

fn secs(text: &str) -> Option<u64> {
    text.parse().ok()
}

#[given(
    regex = r#"^the (link from the terminal to the (?:host|printer|card reader|reader|TMS)|link from the cash register to the terminal|"\w+" link) adds (\d+) ms(?: ± (\d+) ms)?(?: for (\d+) seconds)?$"#
)]
async fn latency(w: &mut PosWorld, link: String, ms: u64, jitter: String, during: String) {
    let link = link_name(&link);
    let jitter: u64 = jitter.parse().unwrap_or(0);
    for stream in ["upstream", "downstream"] {
        add_on(
            w,
            &link,
            json!({"name": format!("latency_{stream}"), "type": "latency", "stream": stream,
                      "attributes": {"latency": ms / 2, "jitter": jitter / 2}}),
            secs(&during),
        )
        .await;
    }
}

#[given(
    regex = r#"^the (link from the terminal to the (?:host|printer|card reader|reader|TMS)|link from the cash register to the terminal|"\w+" link) drops (\d+)% of packets(?: and adds (\d+) ms ± (\d+) ms)?(?: for (\d+) seconds)?$"#
)]
async fn loss(
    w: &mut PosWorld,
    link: String,
    percent: u32,
    ms: String,
    jitter: String,
    during: String,
) {
    assert!(percent <= 100, "{percent}% is not a probability");
    let short = link_name(&link);
    for stream in ["upstream", "downstream"] {
        add_on(
            w,
            &short,
            json!({"name": format!("loss_{stream}"), "type": "loss", "stream": stream,
                      "attributes": {"probability": f64::from(percent) / 100.0}}),
            secs(&during),
        )
        .await;
    }
    if !ms.is_empty() {
        latency(w, link, ms.parse().unwrap_or(0), jitter, during).await;
    }
}

#[given(
    regex = r#"^the (link from the terminal to the (?:host|printer|card reader|reader|TMS)|link from the cash register to the terminal|"\w+" link) is cut after (\d+) messages?$"#
)]
async fn cut_after(w: &mut PosWorld, link: String, n: u64) {
    add_on(
        w,
        &link_name(&link),
        json!({"name": "cut_upstream", "type": "cut", "stream": "upstream",
                  "attributes": {"after_chunks": n}}),
        None,
    )
    .await;
}

#[given(
    regex = r#"^the (link from the terminal to the (?:host|printer|card reader|reader|TMS)|link from the cash register to the terminal|"\w+" link) is down(?: for (\d+) seconds)?$"#
)]
async fn down(w: &mut PosWorld, link: String, during: String) {
    add_on(
        w,
        &link_name(&link),
        json!({"name": "down_upstream", "type": "down", "stream": "upstream"}),
        secs(&during),
    )
    .await;
}

#[given(expr = "the host's name does not resolve")]
async fn dns_failure(w: &mut PosWorld) {
    add_on(
        w,
        "host",
        json!({"name": "dns_failure", "type": "dns_failure", "stream": "upstream"}),
        None,
    )
    .await;
}

#[given(expr = "the host refuses connections")]
async fn refuse(w: &mut PosWorld) {
    add_on(
        w,
        "host",
        json!({"name": "refuse", "type": "refuse", "stream": "upstream"}),
        None,
    )
    .await;
}

#[given(regex = r#"^the "(\w+)" link (refuses connections|fails name resolution)$"#)]
async fn refuse_on(w: &mut PosWorld, link: String, what: String) {
    let kind = if what == "refuses connections" {
        "refuse"
    } else {
        "dns_failure"
    };
    add_on(
        w,
        &link,
        json!({"name": kind, "type": kind, "stream": "upstream"}),
        None,
    )
    .await;
}

#[given(
    regex = r#"^the (link from the terminal to the (?:host|printer|card reader|reader|TMS)|link from the cash register to the terminal|"\w+" link) flaps: up (\d+) ms, down (\d+) ms$"#
)]
async fn flapping(w: &mut PosWorld, link: String, up: u64, down: u64) {
    add_on(
        w,
        &link_name(&link),
        json!({"name": "flapping_upstream", "type": "flapping", "stream": "upstream",
                  "attributes": {"up": up, "down": down}}),
        None,
    )
    .await;
}

#[given(
    regex = r#"^the (link from the terminal to the (?:host|printer|card reader|reader|TMS)|link from the cash register to the terminal|"\w+" link) has the toxic "(.*)"(?: for (\d+) seconds)?$"#
)]
async fn toxic(w: &mut PosWorld, link: String, json_text: String, during: String) {
    let v: serde_json::Value =
        serde_json::from_str(&json_text).unwrap_or_else(|e| panic!("toxic {json_text}: {e}"));
    add_on(w, &link_name(&link), v, secs(&during)).await;
}

#[cucumber::when(
    regex = r#"^the (link from the terminal to the (?:host|printer|card reader|reader|TMS)|link from the cash register to the terminal|"\w+" link) is healthy again$"#
)]
async fn healthy(w: &mut PosWorld, link: String) {
    let link = link_name(&link);
    let b = w.bench().await;
    b.link_faults(&link)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .clear();
}

#[cfg(test)]
mod tests {
    use super::link_name;

    #[test]
    fn link_phrases_name_the_bench_links() {
        assert_eq!(link_name("link from the terminal to the host"), "host");
        assert_eq!(
            link_name("link from the terminal to the card reader"),
            "reader"
        );
        assert_eq!(link_name("link from the terminal to the TMS"), "tms");
        assert_eq!(
            link_name("link from the cash register to the terminal"),
            "ecr"
        );
        assert_eq!(link_name("\"printer\" link"), "printer");
    }
}
