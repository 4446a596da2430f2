//! A fault plan: data (serde), generated from a run's seed, shrunk by removing items and
//! lowering probabilities.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The faults one chaos run applies to every scenario's bench.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub items: Vec<PlanItem>,
}

/// One fault and when it starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    /// Names the item for good: its toxic's name (and so its seeded RNG stream) is
    /// `chaos<id>`, so removing another item never re-rolls this one.
    pub id: u32,
    /// Starts once the host has decided this many requests (0: from the bench's start).
    #[serde(default)]
    pub after_host_messages: u32,
    #[serde(flatten)]
    pub fault: Fault,
}

/// What goes wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// A toxic on a link, as toxiproxy's API writes it (`type`, `stream`, `toxicity`,
    /// `attributes`; the name is set from the item's id). `link` is `host` (the
    /// terminal->host link).
    Link { link: String, toxic: Value },
    /// A printer fault in the printer's own words (`paper-out`, `jam`, `paper-out-after=40`).
    Printer { printer: String },
    /// The terminal loses power (and is started again) at that moment.
    PowerLoss,
    /// The terminal hangs at that moment; the watchdog finds it and restarts it.
    Hang,
}

impl std::fmt::Display for PlanItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = if self.after_host_messages == 0 {
            "from the start".to_string()
        } else {
            format!("after host message {}", self.after_host_messages)
        };
        match &self.fault {
            Fault::Link { link, toxic } => write!(f, "#{} {link} link {toxic} {when}", self.id),
            Fault::Printer { printer } => write!(f, "#{} printer {printer} {when}", self.id),
            Fault::PowerLoss => write!(f, "#{} power loss {when}", self.id),
            Fault::Hang => write!(f, "#{} terminal hang {when}", self.id),
        }
    }
}

/// SplitMix64: a small, well-mixed, seedable generator (the plan's only randomness).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6368_616f_735f_706c) // "chaos_pl"
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in [0, 1), two decimals (plans stay readable).
    pub fn unit(&mut self) -> f64 {
        self.range(0, 99) as f64 / 100.0
    }
}

fn stream(rng: &mut Rng) -> &'static str {
    if rng.range(0, 1) == 0 {
        "upstream"
    } else {
        "downstream"
    }
}

/// A random fault plan of 1 to `max_items` items: faults on the terminal->host link
/// (latency, loss, black hole, reset, cut), bit errors on the cash register's serial line,
/// printer faults, power loss and a hung terminal, each from the start or from a host
/// message on.
pub fn generate(seed: u64, max_items: u32) -> FaultPlan {
    let mut rng = Rng::new(seed);
    let n = rng.range(1, u64::from(max_items.max(1)));
    let mut items = Vec::new();
    for id in 0..n as u32 {
        let after_host_messages = rng.range(0, 4) as u32;
        let fault = match rng.range(0, 10) {
            0 | 1 => Fault::Link {
                link: "host".into(),
                toxic: json!({"type": "loss", "stream": stream(&mut rng),
                    "attributes": {"probability": 0.1 + rng.unit() * 0.5}}),
            },
            2 => Fault::Link {
                link: "host".into(),
                toxic: json!({"type": "latency", "stream": stream(&mut rng),
                    "attributes": {"latency": rng.range(100, 5000), "jitter": rng.range(0, 500)}}),
            },
            3 | 4 => Fault::Link {
                link: "host".into(),
                toxic: json!({"type": "timeout", "stream": stream(&mut rng),
                    "toxicity": 0.5 + rng.unit() / 2.0, "attributes": {"timeout": 0}}),
            },
            5 => Fault::Link {
                link: "host".into(),
                toxic: json!({"type": "reset_peer", "stream": stream(&mut rng),
                    "toxicity": 0.5 + rng.unit() / 2.0,
                    "attributes": {"timeout": rng.range(0, 2000)}}),
            },
            6 => Fault::Link {
                link: "host".into(),
                toxic: json!({"type": "cut", "stream": stream(&mut rng),
                    "attributes": {"after_chunks": rng.range(1, 4)}}),
            },
            7 => Fault::Printer {
                printer: match rng.range(0, 3) {
                    0 => "paper-out".to_string(),
                    1 => "jam".to_string(),
                    2 => "cover-open".to_string(),
                    _ => format!("paper-out-after={}", rng.range(5, 60)),
                },
            },
            8 => Fault::PowerLoss,
            9 => Fault::Link {
                link: "ecr".into(),
                toxic: json!({"type": "bit_errors", "stream": stream(&mut rng),
                    "attributes": {"probability": rng.range(2, 12) as f64 / 1000.0}}),
            },
            _ => Fault::Hang,
        };
        let after_host_messages = match fault {
            // a power loss or a hang from the bench's start would only restart a
            // terminal at rest
            Fault::PowerLoss | Fault::Hang => after_host_messages.max(1),
            _ => after_host_messages,
        };
        items.push(PlanItem {
            id,
            after_host_messages,
            fault,
        });
    }
    FaultPlan { items }
}

impl PlanItem {
    /// The probability this item's fault has (toxicity, or a loss probability), if any.
    pub fn probability(&self) -> Option<f64> {
        let Fault::Link { toxic, .. } = &self.fault else {
            return None;
        };
        toxic
            .pointer("/attributes/probability")
            .and_then(Value::as_f64)
            .or_else(|| toxic.get("toxicity").and_then(Value::as_f64))
    }

    /// The same item with its probability set to `p`.
    pub fn with_probability(&self, p: f64) -> PlanItem {
        let mut item = self.clone();
        if let Fault::Link { toxic, .. } = &mut item.fault {
            let p = (p * 100.0).round() / 100.0;
            if let Some(v) = toxic.pointer_mut("/attributes/probability") {
                *v = json!(p);
            } else if let Some(v) = toxic.get_mut("toxicity") {
                *v = json!(p);
            }
        }
        item
    }

    /// The toxic of a link item as toxiproxy JSON, named `chaos<id>`.
    pub fn toxic_json(&self) -> Option<(String, Value)> {
        let Fault::Link { link, toxic } = &self.fault else {
            return None;
        };
        let mut toxic = toxic.clone();
        if let Value::Object(map) = &mut toxic {
            map.insert("name".into(), json!(format!("chaos{}", self.id)));
        }
        Some((link.clone(), toxic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        assert_eq!(generate(7, 4), generate(7, 4));
        let plans: Vec<FaultPlan> = (0..20).map(|s| generate(s, 4)).collect();
        assert!(plans.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn plans_round_trip_through_json_and_their_toxics_parse() {
        for seed in 0..200 {
            let plan = generate(seed, 4);
            assert!(!plan.items.is_empty() && plan.items.len() <= 4);
            let text = serde_json::to_string(&plan).unwrap();
            let back: FaultPlan = serde_json::from_str(&text).unwrap();
            assert_eq!(back, plan);
            for item in &plan.items {
                if let Some((link, toxic)) = item.toxic_json() {
                    assert!(link == "host" || link == "ecr", "{link}");
                    let spec = poslab_faults::ToxicSpec::from_value(&toxic)
                        .unwrap_or_else(|e| panic!("seed {seed}: {toxic}: {e}"));
                    assert_eq!(spec.name, format!("chaos{}", item.id));
                }
                if let Fault::Printer { printer } = &item.fault {
                    poslab_escpos::parse_faults(printer).unwrap();
                }
                if item.fault == Fault::PowerLoss || item.fault == Fault::Hang {
                    assert!(item.after_host_messages >= 1);
                }
            }
        }
    }

    #[test]
    fn a_probability_is_lowered_in_place() {
        let item = PlanItem {
            id: 3,
            after_host_messages: 0,
            fault: Fault::Link {
                link: "host".into(),
                toxic: json!({"type": "loss", "attributes": {"probability": 0.5}}),
            },
        };
        assert_eq!(item.probability(), Some(0.5));
        assert_eq!(item.with_probability(0.25).probability(), Some(0.25));
        let power = PlanItem {
            id: 1,
            after_host_messages: 2,
            fault: Fault::PowerLoss,
        };
        assert_eq!(power.probability(), None);
        assert_eq!(power.to_string(), "#1 power loss after host message 2");
    }
}
