//! Rules as data: the facts a rule looks at, and first-match evaluation.
//!
//! The engine works on [`Facts`], plain values taken from a request, so it is tested
//! without the ISO 8583 codec.

use std::collections::BTreeMap;

use crate::config::{ActionConfig, CodeSpec, MatchConfig, ResponseCode, RuleConfig};

/// What a rule can see of a request.
#[derive(Clone, Default)]
pub struct Facts<'a> {
    pub mti: &'a str,
    pub processing_code: Option<&'a str>,
    /// DE 4 in minor units.
    pub amount: Option<u64>,
    pub currency: Option<&'a str>,
    /// The clear PAN, for prefix matching only; never journaled.
    pub pan: Option<&'a str>,
    pub card_profile: Option<&'a str>,
    pub entry_mode: Option<&'a str>,
    pub tid: Option<&'a str>,
    pub mid: Option<&'a str>,
    /// Text of any field, for `fields:` conditions.
    pub field: Option<&'a dyn Fn(u16) -> Option<&'a str>>,
}

impl std::fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts")
            .field("mti", &self.mti)
            .field("processing_code", &self.processing_code)
            .field("amount", &self.amount)
            .field("pan", &self.pan.map(poslab_sensitive::mask_pan))
            .field("tid", &self.tid)
            .finish_non_exhaustive()
    }
}

/// A rule ready to evaluate.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub when: MatchConfig,
    pub then: ActionConfig,
    /// Firings left (`None`: unlimited).
    pub remaining: Option<u32>,
}

impl From<RuleConfig> for Rule {
    fn from(c: RuleConfig) -> Self {
        Rule {
            name: c.name,
            when: c.when,
            then: c.then,
            remaining: c.times,
        }
    }
}

impl Rule {
    /// A rule that fires once, for steps such as "the host declines the next sale with 51".
    pub fn once(name: impl Into<String>, when: MatchConfig, then: ActionConfig) -> Rule {
        Rule {
            name: name.into(),
            when,
            then,
            remaining: Some(1),
        }
    }

    pub fn matches(&self, f: &Facts) -> bool {
        if self.remaining == Some(0) {
            return false;
        }
        let w = &self.when;
        let any_prefix = |list: &[crate::config::DigitString], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|p| v.starts_with(&p.0)))
        };
        let any_exact = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|p| p == v))
        };
        (w.mti.is_empty() || w.mti.iter().any(|p| p.matches(f.mti)))
            && any_prefix(&w.processing_code, f.processing_code)
            && w.amount
                .as_ref()
                .is_none_or(|r| f.amount.is_some_and(|a| r.contains(a)))
            && (w.currency.is_empty()
                || f.currency
                    .is_some_and(|c| w.currency.iter().any(|p| p.0 == c)))
            && any_prefix(&w.pan_prefix, f.pan)
            && any_exact(&w.card_profile, f.card_profile)
            && any_prefix(&w.entry_mode, f.entry_mode)
            && any_exact(&w.tid, f.tid)
            && any_exact(&w.mid, f.mid)
            && fields_match(&w.fields, f)
    }

    /// The code this rule gives a request with `amount` (minor units).
    pub fn code(&self, amount: Option<u64>) -> Option<ResponseCode> {
        match self.then.code? {
            CodeSpec::Fixed(code) => Some(code),
            CodeSpec::FromAmount => {
                let a = amount.unwrap_or(0) % 100;
                let digits = [b'0' + (a / 10) as u8, b'0' + (a % 10) as u8];
                Some(ResponseCode(digits))
            }
        }
    }
}

fn fields_match(wanted: &BTreeMap<u16, String>, f: &Facts) -> bool {
    wanted.iter().all(|(de, value)| {
        f.field
            .and_then(|get| get(*de))
            .is_some_and(|v| v == value.as_str())
    })
}

/// Ordered rules: one-shot overrides first (in the order they were pushed), then the
/// configured rules; the first match wins and uses up one of its firings.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub overrides: Vec<Rule>,
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        RuleSet {
            overrides: Vec::new(),
            rules,
        }
    }

    /// Finds the first matching rule, uses one firing and returns a copy of it.
    pub fn fire(&mut self, facts: &Facts) -> Option<Rule> {
        if let Some(i) = self.overrides.iter().position(|r| r.matches(facts)) {
            let mut rule = self.overrides.remove(i);
            if let Some(n) = rule.remaining.as_mut() {
                *n = n.saturating_sub(1);
                if *n > 0 {
                    self.overrides.insert(i, rule.clone());
                }
            }
            return Some(rule);
        }
        let rule = self.rules.iter_mut().find(|r| r.matches(facts))?;
        if let Some(n) = rule.remaining.as_mut() {
            *n = n.saturating_sub(1);
        }
        Some(rule.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Amount, AmountRange, Config, DigitString, MtiPattern};

    fn sale(amount: u64) -> Facts<'static> {
        Facts {
            mti: "0200",
            processing_code: Some("000000"),
            amount: Some(amount),
            currency: Some("978"),
            pan: Some("4761739001010010"),
            tid: Some("00000001"),
            mid: Some("000000000000001"),
            ..Default::default()
        }
    }

    fn defaults() -> RuleSet {
        RuleSet::new(
            Config::default_config()
                .rules
                .into_iter()
                .map(Rule::from)
                .collect(),
        )
    }

    #[test]
    fn default_rules_decline_by_amount_and_approve_the_rest() {
        let mut rules = defaults();
        let cases = [
            (90551, "decline-by-amount", "51"),
            (90005, "decline-by-amount", "05"),
            (99999, "decline-by-amount", "99"),
            (89999, "approve", "00"),
            (100000, "approve", "00"),
            (1_000_000, "approve", "00"),
            (1_000_001, "over-limit", "61"),
            (1234, "approve", "00"),
        ];
        for (amount, name, code) in cases {
            let f = sale(amount);
            let rule = rules.fire(&f).expect("a default rule matches");
            assert_eq!(rule.name, name, "amount {amount}");
            assert_eq!(
                rule.code(f.amount).unwrap().as_str(),
                code,
                "amount {amount}"
            );
        }
    }

    #[test]
    fn overrides_fire_once_before_the_configured_rules() {
        let mut rules = defaults();
        rules.overrides.push(Rule::once(
            "next sale 51",
            MatchConfig {
                mti: vec![MtiPattern("0200".into())],
                ..Default::default()
            },
            ActionConfig {
                code: Some(CodeSpec::Fixed(ResponseCode(*b"51"))),
                ..Default::default()
            },
        ));
        let f = sale(1000);
        assert_eq!(rules.fire(&f).unwrap().name, "next sale 51");
        assert_eq!(rules.fire(&f).unwrap().name, "approve");
        assert!(rules.overrides.is_empty());
    }

    #[test]
    fn every_condition_must_hold() {
        let rule = Rule::from(RuleConfig {
            name: "chip visa over 50".into(),
            when: MatchConfig {
                pan_prefix: vec![DigitString("4".into())],
                entry_mode: vec![DigitString("05".into())],
                amount: Some(AmountRange {
                    min: Some(Amount(5000)),
                    ..Default::default()
                }),
                currency: vec![DigitString("978".into())],
                ..Default::default()
            },
            ..Default::default()
        });
        let mut f = sale(6000);
        assert!(!rule.matches(&f), "no entry mode");
        f.entry_mode = Some("051");
        assert!(rule.matches(&f));
        f.currency = Some("840");
        assert!(!rule.matches(&f));
        f.currency = Some("978");
        f.pan = Some("5413330000000000");
        assert!(!rule.matches(&f));
        f.pan = None;
        assert!(
            !rule.matches(&f),
            "a missing value never matches a condition"
        );
    }

    #[test]
    fn field_conditions_compare_text() {
        let mut when = MatchConfig::default();
        when.fields.insert(70, "301".into());
        let rule = Rule::once("echo", when, ActionConfig::default());
        let get = |de: u16| (de == 70).then_some("301");
        let f = Facts {
            mti: "0800",
            field: Some(&get),
            ..Default::default()
        };
        assert!(rule.matches(&f));
        let other = |de: u16| (de == 70).then_some("001");
        let f = Facts {
            mti: "0800",
            field: Some(&other),
            ..Default::default()
        };
        assert!(!rule.matches(&f));
    }

    #[test]
    fn limited_rules_stop_firing() {
        let mut rules = RuleSet::new(vec![
            Rule {
                remaining: Some(2),
                ..Rule::once("twice", MatchConfig::default(), ActionConfig::default())
            },
            Rule {
                remaining: None,
                ..Rule::once("always", MatchConfig::default(), ActionConfig::default())
            },
        ]);
        let f = sale(1);
        let names: Vec<String> = (0..4).map(|_| rules.fire(&f).unwrap().name).collect();
        assert_eq!(names, ["twice", "twice", "always", "always"]);
    }
}
