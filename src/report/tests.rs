//! The three writers over one hand-built run: two features, two outline rows sharing a name,
//! a failed step whose error holds `<`, `&`, a quote and an escape character, an undefined
//! step, a journal excerpt and a receipt. No wall clock: every duration is fixed.

use std::collections::BTreeMap;
use std::time::Duration;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{json, Value};

use super::*;

const ERROR: &str = "expected display <DECLINED> & \"code 05\"\u{1b}[0m\nfound 'APPROVED'";
const REPLAY: &str = "poslab run 'features/purchase.feature:21' --seed 42 --bench default";
const RECEIPT: &str =
    "  MERCHANT COPY\nCARD 476173******0010\nAMOUNT      EUR 12.50\n  APPROVED 123456";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn step(keyword: &str, text: &str, line: usize, status: Status, micros: u64) -> StepReport {
    StepReport {
        keyword: keyword.into(),
        text: text.into(),
        line,
        status,
        duration: Duration::from_micros(micros),
        ..Default::default()
    }
}

fn entry(seq: u64, at_ms: f64, link: &str, kind: &str, body: Value) -> Value {
    let mut e = json!({ "seq": seq, "at_ms": at_ms, "wall": "2026-11-23T05:30:01.000Z",
                        "link": link, "kind": kind });
    if let (Some(map), Value::Object(body)) = (e.as_object_mut(), body) {
        map.extend(body);
    }
    e
}

fn outline_row(line: usize, code: &str, failed: bool) -> ScenarioReport {
    let mut then = step(
        "Then ",
        "the terminal shows \"DECLINED\"",
        24,
        Status::Passed,
        300,
    );
    if failed {
        then.status = Status::Failed;
        then.error = Some(ERROR.into());
        then.journal_excerpt = vec![
            entry(
                7,
                1520.25,
                "terminal-host",
                "iso8583",
                json!({"mti": "0210", "de39": code}),
            ),
            entry(
                8,
                1521.5,
                "terminal-printer",
                "escpos",
                json!({"text": "APPROVED"}),
            ),
        ];
    }
    ScenarioReport {
        name: "Declined by response code".into(),
        keyword: "Scenario Outline".into(),
        line,
        tags: vec!["smoke".into(), "decline".into()],
        steps: vec![
            step(
                "Given ",
                "the host declines with code 05",
                22,
                Status::Passed,
                1500,
            ),
            step(
                "When ",
                "the cardholder pays EUR 12.50",
                23,
                Status::Passed,
                250_000,
            ),
            then,
        ],
        duration: ms(252),
        replay: if failed {
            REPLAY.into()
        } else {
            format!("poslab run features/purchase.feature:{line} --seed 42")
        },
        journal: vec![entry(
            1,
            0.5,
            "terminal-host",
            "iso8583",
            json!({"mti": "0200", "de2": "476173******0010"}),
        )],
        receipts: vec![],
    }
}

fn sample() -> RunReport {
    let mut approved = ScenarioReport {
        name: "Approved purchase".into(),
        keyword: "Scenario".into(),
        line: 5,
        tags: vec!["smoke".into()],
        steps: vec![
            step(
                "Given ",
                "a terminal signed on to the host",
                6,
                Status::Passed,
                1200,
            ),
            step(
                "When ",
                "the cardholder pays EUR 12.50",
                7,
                Status::Passed,
                118_000,
            ),
            step("Then ", "the receipt shows", 8, Status::Passed, 800),
        ],
        duration: ms(120),
        replay: "poslab run features/purchase.feature:5 --seed 42".into(),
        journal: vec![
            entry(
                1,
                0.5,
                "terminal-host",
                "iso8583",
                json!({"mti": "0200", "de2": "476173******0010"}),
            ),
            entry(
                2,
                118.25,
                "terminal-host",
                "iso8583",
                json!({"mti": "0210", "de39": "00"}),
            ),
        ],
        receipts: vec![RECEIPT.into()],
    };
    approved.steps[2].table = vec![
        vec!["line".into(), "text".into()],
        vec!["4".into(), "APPROVED".into()],
    ];
    let purchase = FeatureReport {
        name: "Purchase online".into(),
        description: Some("  As a merchant I want card payments approved online.".into()),
        path: "features/purchase.feature".into(),
        tags: vec!["smoke".into()],
        scenarios: vec![
            approved,
            outline_row(20, "51", false),
            outline_row(21, "05", true),
        ],
    };
    let reversal = FeatureReport {
        name: "Reversal <script>alert(1)</script>".into(),
        description: None,
        path: "features/reversal.feature".into(),
        tags: vec![],
        scenarios: vec![
            ScenarioReport {
                name: "Reversal after a host timeout".into(),
                keyword: "Scenario".into(),
                line: 3,
                steps: vec![
                    step(
                        "Given ",
                        "a terminal signed on to the host",
                        4,
                        Status::Passed,
                        1000,
                    ),
                    step(
                        "When ",
                        "the host goes silent for 60 s",
                        5,
                        Status::Undefined,
                        0,
                    ),
                    step("Then ", "the host receives a 0400", 6, Status::Skipped, 0),
                ],
                duration: ms(1),
                replay: "poslab run features/reversal.feature:3 --seed 42".into(),
                ..Default::default()
            },
            ScenarioReport {
                name: "No reversal after an approval".into(),
                keyword: "Scenario".into(),
                line: 9,
                steps: vec![step(
                    "Given ",
                    "a terminal signed on to the host",
                    10,
                    Status::Passed,
                    1000,
                )],
                duration: ms(2),
                replay: "poslab run features/reversal.feature:9 --seed 42".into(),
                ..Default::default()
            },
        ],
    };
    RunReport {
        bench: "default".into(),
        seed: 42,
        time: "simulated".into(),
        shard: Some("1/2".into()),
        tags: Some("@smoke and not @wip".into()),
        started: "2026-11-23T05:30:00Z".into(),
        duration: Duration::from_millis(1377),
        features: vec![purchase, reversal],
    }
}

fn render(write: fn(&RunReport, &mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&sample(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn junit_xml() -> String {
    render(junit::write)
}

fn cucumber() -> String {
    render(cucumber_json::write)
}

fn html_page() -> String {
    render(html::write)
}

/// A parsed XML element: name, attributes (unescaped), text (unescaped), children.
#[derive(Debug, Default)]
struct El {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<El>,
}

impl El {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{} has no {name}", self.name))
    }
    fn all(&self, name: &'static str) -> impl Iterator<Item = &El> + '_ {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn one(&self, name: &'static str) -> &El {
        let mut it = self.all(name);
        let first = it
            .next()
            .unwrap_or_else(|| panic!("{} has no <{name}>", self.name));
        assert!(
            it.next().is_none(),
            "{} has more than one <{name}>",
            self.name
        );
        first
    }
}

/// Parses `xml` with quick-xml, failing on any syntax error, mismatched or unclosed element,
/// unknown entity, or more than one root; returns the root.
fn parse_xml(xml: &str) -> El {
    let start = |e: &quick_xml::events::BytesStart| El {
        name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.unescape_value().unwrap().into_owned(),
                )
            })
            .collect(),
        ..Default::default()
    };
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<El> = vec![El::default()];
    loop {
        match reader.read_event().unwrap() {
            Event::Decl(_) => {}
            Event::Start(e) => stack.push(start(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(start(&e)),
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Text(t) => stack.last_mut().unwrap().text += &t.decode().unwrap(),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r.decode().unwrap())
                        .unwrap_or_else(|| panic!("unknown entity {r:?}"))
                        .to_string(),
                };
                stack.last_mut().unwrap().text += &c;
            }
            Event::Eof => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut doc = stack.pop().unwrap();
    assert!(stack.is_empty(), "unclosed elements");
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

#[test]
fn junit_is_well_formed_xml_with_the_right_counts() {
    let xml = junit_xml();
    assert!(
        xml.chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')),
        "a character XML 1.0 forbids is left in the output"
    );
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    for (k, v) in [
        ("tests", "5"),
        ("failures", "1"),
        ("skipped", "1"),
        ("errors", "0"),
        ("time", "1.377"),
    ] {
        assert_eq!(root.attr(k), v, "testsuites {k}");
    }
    let suites: Vec<&El> = root.all("testsuite").collect();
    assert_eq!(suites.len(), 2);
    let expected = [
        (
            "Purchase online",
            "3",
            "1",
            "0",
            "0.624",
            "features/purchase.feature",
        ),
        (
            "Reversal <script>alert(1)</script>",
            "2",
            "0",
            "1",
            "0.003",
            "features/reversal.feature",
        ),
    ];
    for (suite, (name, tests, failures, skipped, time, file)) in suites.iter().zip(expected) {
        assert_eq!(suite.attr("name"), name);
        assert_eq!(suite.attr("tests"), tests);
        assert_eq!(suite.attr("failures"), failures);
        assert_eq!(suite.attr("skipped"), skipped);
        assert_eq!(suite.attr("errors"), "0");
        assert_eq!(suite.attr("time"), time);
        assert_eq!(suite.attr("timestamp"), "2026-11-23T05:30:00Z");
        assert_eq!(suite.attr("file"), file);
        let props: BTreeMap<&str, &str> = suite
            .one("properties")
            .all("property")
            .map(|p| (p.attr("name"), p.attr("value")))
            .collect();
        assert_eq!(props["seed"], "42");
        assert_eq!(props["tags"], "@smoke and not @wip");
        assert_eq!(props["shard"], "1/2");
        assert_eq!(
            suite.all("testcase").count(),
            tests.parse::<usize>().unwrap()
        );
    }

    let cases: Vec<&El> = suites[0].all("testcase").collect();
    let names: Vec<&str> = cases.iter().map(|c| c.attr("name")).collect();
    assert_eq!(
        names,
        [
            "Approved purchase",
            "Declined by response code (line 20)",
            "Declined by response code (line 21)"
        ]
    );
    assert_eq!(cases[2].attr("classname"), "Purchase online");
    assert_eq!(cases[2].attr("file"), "features/purchase.feature");
    assert_eq!(cases[2].attr("line"), "21");
    assert_eq!(cases[2].attr("time"), "0.252");
    assert!(
        cases[0].children.iter().all(|c| c.name == "system-out"),
        "a passed case has no failure"
    );

    let failure = cases[2].one("failure");
    // first line of the error only; the escape character XML cannot hold is dropped
    assert_eq!(
        failure.attr("message"),
        "expected display <DECLINED> & \"code 05\"[0m"
    );
    assert_eq!(failure.attr("type"), "step failed");
    for part in [
        "Then the terminal shows \"DECLINED\" (features/purchase.feature:24)\n",
        "expected display <DECLINED> & \"code 05\"[0m\nfound 'APPROVED'\n",
        "\njournal excerpt:\n{\"at_ms\":1520.25,",
        "\"de39\":\"05\"",
        "\"kind\":\"escpos\"",
        &format!("\nreplay: {REPLAY}\n"),
    ] {
        assert!(
            failure.text.contains(part),
            "failure text lacks {part:?}:\n{}",
            failure.text
        );
    }
    let out = &cases[2].one("system-out").text;
    assert!(
        out.contains("failed    Then the terminal shows \"DECLINED\" (0.000s)"),
        "{out}"
    );

    let reversal: Vec<&El> = suites[1].all("testcase").collect();
    assert_eq!(
        reversal[0].one("skipped").attr("message"),
        "undefined step: When the host goes silent for 60 s"
    );
    assert!(reversal[0].all("failure").next().is_none());
    let out = &reversal[0].one("system-out").text;
    assert!(
        out.contains("undefined When the host goes silent for 60 s (0.000s)\n"),
        "{out}"
    );
    assert!(
        out.contains("skipped   Then the host receives a 0400"),
        "{out}"
    );
    assert!(reversal[1].all("skipped").next().is_none());
}

#[test]
fn junit_escapes_markup_and_quotes_in_attributes() {
    let xml = junit_xml();
    assert!(xml.contains(r#"name="Reversal &lt;script&gt;alert(1)&lt;/script&gt;""#));
    assert!(
        xml.contains("message=\"expected display &lt;DECLINED&gt; &amp; &quot;code 05&quot;[0m\"")
    );
    assert!(xml.contains("found &apos;APPROVED&apos;"));
    assert!(!xml.contains("<script"));
}

#[test]
fn cucumber_json_has_statuses_durations_and_ids() {
    let v: Value = serde_json::from_str(&cucumber()).unwrap();
    let features = v.as_array().unwrap();
    assert_eq!(features.len(), 2);
    let f = &features[0];
    assert_eq!(f["uri"], "features/purchase.feature");
    assert_eq!(f["id"], "purchase-online");
    assert_eq!(f["keyword"], "Feature");
    assert_eq!(
        f["description"],
        "  As a merchant I want card payments approved online."
    );
    assert_eq!(f["tags"][0]["name"], "@smoke");
    assert!(f["line"].is_u64() && f["tags"][0]["line"].is_u64());
    let elements = f["elements"].as_array().unwrap();
    let ids: Vec<&str> = elements.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "purchase-online;approved-purchase",
            "purchase-online;declined-by-response-code-line-20",
            "purchase-online;declined-by-response-code-line-21",
        ]
    );
    let failed = &elements[2];
    assert_eq!(failed["name"], "Declined by response code");
    assert_eq!(failed["keyword"], "Scenario Outline");
    assert_eq!(failed["type"], "scenario");
    assert_eq!(failed["line"], 21);
    assert_eq!(
        failed["tags"],
        json!([{"name": "@smoke", "line": 20}, {"name": "@decline", "line": 20}])
    );
    let steps = failed["steps"].as_array().unwrap();
    assert_eq!(steps[0]["keyword"], "Given ");
    assert_eq!(steps[0]["name"], "the host declines with code 05");
    assert_eq!(steps[0]["line"], 22);
    assert_eq!(
        steps[0]["result"],
        json!({"status": "passed", "duration": 1_500_000})
    );
    assert_eq!(steps[1]["result"]["duration"], 250_000_000);
    assert_eq!(steps[2]["result"]["status"], "failed");
    assert_eq!(steps[2]["result"]["error_message"], ERROR);
    let table = &elements[0]["steps"][2]["rows"];
    assert_eq!(
        table,
        &json!([{"cells": ["line", "text"]}, {"cells": ["4", "APPROVED"]}])
    );

    let r = &features[1]["elements"][0]["steps"];
    let statuses: Vec<&str> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["result"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["passed", "undefined", "skipped"]);
    assert_eq!(features[1]["description"], "");
    assert_eq!(features[1]["id"], "reversal-script-alert-1-script");
}

/// Every `<` of the page opens one of the writer's own tags: nothing from the data is raw.
#[test]
fn html_escapes_everything_from_the_data() {
    let page = html_page();
    const TAGS: &[&str] = &[
        "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h4",
        "table", "tr", "th", "td", "nav", "ol", "li", "a", "span", "main", "section", "p",
        "details", "summary", "b", "pre", "code",
    ];
    for (at, _) in page.match_indices('<') {
        let tag: String = page[at + 1..]
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect();
        assert!(
            TAGS.contains(&tag.as_str()),
            "raw <{tag} at byte {at}: {}",
            &page[at..(at + 40).min(page.len())]
        );
    }
    assert!(!page.contains("<script"));
    assert!(page.contains("Reversal &lt;script&gt;alert(1)&lt;/script&gt;"));
    // the error, with the escape character shown rather than passed through
    assert!(page.contains(
        "<pre class=\"error\">features/purchase.feature:24\n\
         expected display &lt;DECLINED&gt; &amp; &quot;code 05&quot;\\u{1b}[0m\nfound &#39;APPROVED&#39;</pre>"
    ));
    assert!(page.contains(
        "<code class=\"replay\">poslab run &#39;features/purchase.feature:21&#39; --seed 42 --bench default</code>"
    ));
    assert!(page.contains(
        "<pre class=\"receipt\">  MERCHANT COPY\nCARD 476173******0010\nAMOUNT      EUR 12.50\n  APPROVED 123456</pre>"
    ));
    // journal rows: envelope cells, then the rest as compact JSON
    assert!(page.contains(
        "<tr><td>7</td><td>1520.250</td><td>terminal-host</td><td>iso8583</td>\
         <td>{&quot;de39&quot;:&quot;05&quot;,&quot;mti&quot;:&quot;0210&quot;,&quot;wall&quot;:&quot;2026-11-23T05:30:01.000Z&quot;}</td></tr>"
    ));
    assert!(page.contains("<summary>Journal (2 entries)</summary>"));
}

#[test]
fn html_opens_failed_scenarios_and_states_the_run() {
    let page = html_page();
    assert!(page.contains("<details class=\"scenario\" id=\"f0-s2\" open>"));
    for closed in ["f0-s0", "f0-s1", "f1-s0", "f1-s1"] {
        assert!(
            page.contains(&format!("<details class=\"scenario\" id=\"{closed}\">")),
            "{closed}"
        );
    }
    assert!(page.contains("<h1>poslab run <span class=\"badge failed\">✘ FAILED</span></h1>"));
    for row in [
        "<tr><th>Seed</th><td>42</td></tr>",
        "<tr><th>Time</th><td>simulated</td></tr>",
        "<tr><th>Shard</th><td>1/2</td></tr>",
        "<tr><th>Tags</th><td>@smoke and not @wip</td></tr>",
        "<tr><th>Duration</th><td>1.377 s</td></tr>",
        "<tr><th>Scenarios</th><td>3 passed, 1 failed, 1 skipped or undefined</td></tr>",
    ] {
        assert!(page.contains(row), "{row}");
    }
    assert!(page.contains("<a href=\"#f1\">Reversal &lt;script&gt;"));
    assert!(page.contains("<span class=\"badge undefined\">? UNDEFINED</span>"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );
}

#[test]
fn case_names_set_apart_shared_names_only() {
    let scenario = |name: &str, line| ScenarioReport {
        name: name.into(),
        keyword: "Scenario".into(),
        line,
        ..Default::default()
    };
    let feature = FeatureReport {
        scenarios: vec![scenario("a", 3), scenario("b", 5), scenario("a", 7)],
        ..Default::default()
    };
    assert_eq!(feature.case_names(), ["a (line 3)", "b", "a (line 7)"]);
}

#[test]
fn write_all_creates_directories_and_only_the_files_asked_for() {
    let dir = std::env::temp_dir().join(format!("poslab-report-{}", std::process::id()));
    let junit = dir.join("a/b/junit.xml");
    let html = dir.join("c/report.html");
    write_all(&sample(), Some(&junit), None, Some(&html)).unwrap();
    assert_eq!(std::fs::read_to_string(&junit).unwrap(), junit_xml());
    assert_eq!(std::fs::read_to_string(&html).unwrap(), html_page());
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshot_junit() {
    insta::assert_snapshot!("junit", junit_xml());
}

#[test]
fn snapshot_cucumber_json() {
    insta::assert_snapshot!("cucumber_json", cucumber());
}

#[test]
fn snapshot_html() {
    insta::assert_snapshot!("html", html_page());
}
