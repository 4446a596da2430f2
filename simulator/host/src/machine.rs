//! The host state machine: one request in, one [`Decision`] out. Sans-IO: time is an
//! input (`RequestContext::now`), delays and closes are actions for the adapter.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use poslab_iso8583::{Field, Message, Mti, Spec};
use poslab_sensitive::{mask_pan, Pan};

use crate::config::{
    Amount, BadFrames, CardKind, CardProfileConfig, Config, Delivery, DuplicateMode, ResponseCode,
    UnsolicitedConfig,
};
use crate::ids::{mmddhhmmss, IdGenerator};
use crate::risk::Risk;
use crate::rules::{Facts, Rule, RuleSet};
use crate::security::{NoSecurity, Security};
use crate::settlement::{Difference, Totals};

/// Fields a response copies from its request when the request has them.
pub const ECHOED: [u16; 14] = [3, 4, 7, 11, 12, 13, 24, 25, 32, 37, 41, 42, 49, 70];

/// Where a request came from and when.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The connection id (for the journal and for the transaction record).
    pub conn: u64,
    pub now: SystemTime,
    /// A TID known from the link (used when the message has no DE 41).
    pub tid: Option<String>,
}

/// What the host does about one request.
#[derive(Debug, Default)]
pub struct Decision {
    /// The answer, when one is sent.
    pub response: Option<Message>,
    /// How to deliver it, in order.
    pub actions: Vec<Action>,
    /// The flow the request went through.
    pub flow: &'static str,
    /// The rule that decided (or shaped) the answer.
    pub rule: Option<String>,
    /// The response code decided (also when no answer is sent).
    pub code: Option<ResponseCode>,
    /// What the host did and why, for the journal.
    pub notes: Vec<String>,
}

/// Delivery instructions for the async adapter.
#[derive(Debug)]
pub enum Action {
    /// Hold the answer this long before sending it.
    Delay(Duration),
    /// Send the answer twice.
    Twice,
    /// Send only the first half of the answer's frame.
    Truncate,
    /// Send a frame whose message does not decode.
    Malform,
    /// Close the connection (after sending the answer, if there is one).
    Close,
    /// Send this message after the answer.
    Unsolicited(Message),
}

/// What a transaction in a terminal's batch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnKind {
    /// Goods and services, cash, cashback: the cardholder is debited.
    Debit,
    /// A refund: the cardholder is credited.
    Credit,
    /// A void (processing code 02/22) of the transaction at this index.
    Void(usize),
    /// No money moves (balance inquiry, authorisation only).
    NoMoney,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Standing,
    Reversed,
    Voided,
}

/// A transaction the host answered, kept in the terminal's open batch.
#[derive(Clone, Debug)]
pub struct Txn {
    pub mti: String,
    pub processing_code: String,
    pub kind: TxnKind,
    pub stan: u32,
    pub amount: u64,
    pub currency: Option<String>,
    pub rrn: String,
    pub approval: Option<String>,
    pub code: ResponseCode,
    pub state: TxnState,
    /// 0200/0220-class: part of the settlement totals.
    pub settles: bool,
    pub pan_masked: Option<String>,
    pub card_kind: CardKind,
    /// Merchant fee in minor units.
    pub fee: u64,
    pub conn: u64,
    pub at: SystemTime,
}

/// A transaction the terminal sent in a batch upload (0320).
#[derive(Clone, Debug)]
pub struct Uploaded {
    pub stan: u32,
    pub processing_code: String,
    pub amount: u64,
}

/// Per-terminal state.
#[derive(Clone, Debug, Default)]
pub struct TerminalState {
    pub mid: String,
    pub signed_on: bool,
    pub batch: Vec<Txn>,
    /// Latest transaction per STAN.
    by_stan: HashMap<u32, usize>,
    /// Transactions received by batch upload since the last settlement attempt.
    pub upload: Option<Vec<Uploaded>>,
    pub batches_closed: u32,
}

impl TerminalState {
    /// The host's totals for this terminal's open batch.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for txn in self
            .batch
            .iter()
            .filter(|t| t.settles && t.code.is_approved())
        {
            let standing = txn.state == TxnState::Standing;
            match (txn.kind, standing) {
                (TxnKind::Debit, true) => {
                    t.debits += 1;
                    t.debits_amount += txn.amount;
                }
                (TxnKind::Debit, false) => {
                    t.debits_reversed += 1;
                    t.debits_reversed_amount += txn.amount;
                }
                (TxnKind::Credit, true) => {
                    t.credits += 1;
                    t.credits_amount += txn.amount;
                }
                (TxnKind::Credit, false) => {
                    t.credits_reversed += 1;
                    t.credits_reversed_amount += txn.amount;
                }
                _ => {}
            }
        }
        t
    }

    fn uploaded_totals(upload: &[Uploaded]) -> Totals {
        let mut t = Totals::default();
        for u in upload {
            match kind_of(&u.processing_code, true) {
                TxnKind::Debit => {
                    t.debits += 1;
                    t.debits_amount += u.amount;
                }
                TxnKind::Credit => {
                    t.credits += 1;
                    t.credits_amount += u.amount;
                }
                // an uploaded void stands for a voided sale (or refund, 22)
                TxnKind::Void(_) if u.processing_code.starts_with("22") => {
                    t.credits_reversed += 1;
                    t.credits_reversed_amount += u.amount;
                }
                TxnKind::Void(_) => {
                    t.debits_reversed += 1;
                    t.debits_reversed_amount += u.amount;
                }
                TxnKind::NoMoney => {}
            }
        }
        t
    }

    fn record(&mut self, txn: Txn) -> usize {
        let i = self.batch.len();
        self.by_stan.insert(txn.stan, i);
        self.batch.push(txn);
        i
    }

    /// A host data error, for rehearsals: the last standing transaction that settles is
    /// lost from the open batch (as if its write never reached the database), so the
    /// next settlement is out of balance. Returns the lost transaction.
    pub fn lose_last_standing(&mut self) -> Option<Txn> {
        let i = self.batch.iter().rposition(|t| {
            t.settles
                && t.code.is_approved()
                && t.state == TxnState::Standing
                && matches!(t.kind, TxnKind::Debit | TxnKind::Credit)
        })?;
        let lost = self.batch.remove(i);
        for t in &mut self.batch {
            if let TxnKind::Void(k) = &mut t.kind {
                if *k == i {
                    *k = usize::MAX;
                } else if *k > i && *k != usize::MAX {
                    *k -= 1;
                }
            }
        }
        self.by_stan.clear();
        for (j, t) in self.batch.iter().enumerate() {
            self.by_stan.insert(t.stan, j);
        }
        Some(lost)
    }

    fn close_batch(&mut self) {
        self.batch.clear();
        self.by_stan.clear();
        self.upload = None;
        self.batches_closed += 1;
    }
}

/// The acquirer host.
pub struct Host {
    tids: HashMap<String, usize>,
    merchants: Vec<Merchant>,
    cards: Vec<CardProfileConfig>,
    rules: RuleSet,
    config: Config,
    terminals: HashMap<String, TerminalState>,
    ids: IdGenerator,
    stan: u32,
    security: Box<dyn Security>,
    spec: Option<Spec>,
    risk: Risk,
}

#[derive(Clone, Debug)]
struct Merchant {
    mid: String,
    fees: Vec<(CardKind, f64)>,
}

/// Which flow a request takes, from its MTI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Authorization,
    Financial,
    Advice,
    Reversal,
    Network,
    Settlement,
    BatchUpload,
    Response,
    Unsupported,
}

impl Flow {
    fn of(mti: &str) -> Flow {
        let b = mti.as_bytes();
        let (class, function) = match b {
            [_, c, f, _] => (*c, *f),
            _ => return Flow::Unsupported,
        };
        if matches!(function, b'1' | b'3' | b'5') {
            return Flow::Response;
        }
        match (class, function) {
            (b'1', b'0') => Flow::Authorization,
            (b'2', b'0') => Flow::Financial,
            (b'1' | b'2', b'2') => Flow::Advice,
            (b'4', b'0' | b'2') => Flow::Reversal,
            (b'5', b'0' | b'2') => Flow::Settlement,
            (b'3', b'2') => Flow::BatchUpload,
            (b'8', b'0' | b'4') => Flow::Network,
            _ => Flow::Unsupported,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flow::Authorization => "authorization",
            Flow::Financial => "financial",
            Flow::Advice => "advice",
            Flow::Reversal => "reversal",
            Flow::Network => "network",
            Flow::Settlement => "settlement",
            Flow::BatchUpload => "batch-upload",
            Flow::Response => "response",
            Flow::Unsupported => "unsupported",
        }
    }
}

/// The kind of money movement of a processing code (DE 3).
fn kind_of(processing_code: &str, settles: bool) -> TxnKind {
    match processing_code.get(..2) {
        Some("20") => TxnKind::Credit,
        Some("02" | "22") => TxnKind::Void(usize::MAX),
        Some("30" | "31") => TxnKind::NoMoney,
        _ if !settles => TxnKind::NoMoney,
        _ => TxnKind::Debit,
    }
}

/// A purchase-like processing code (goods and services, cash, cashback: the cardholder is
/// debited), whatever the message class: what risk monitoring looks at.
fn is_purchase(processing_code: &str) -> bool {
    kind_of(processing_code, true) == TxnKind::Debit
}

/// What the flow decided before rules, and what to change if the answer is an approval.
struct Outcome {
    code: ResponseCode,
    /// A refusal the rules cannot turn into an approval (03, 25, 94, 95, 30...).
    firm: bool,
    effect: Effect,
    /// Values to put in the response.
    set: Vec<(u16, String)>,
    notes: Vec<String>,
}

enum Effect {
    None,
    Record(Box<Txn>),
    /// Record this (declined or approved) transaction; on approval also void the original.
    RecordVoid(Box<Txn>, usize),
    Reverse(usize),
    SignOn(bool),
    CloseBatch,
    Upload(Uploaded),
}

impl Outcome {
    fn code(code: &[u8; 2]) -> Outcome {
        Outcome {
            code: ResponseCode(*code),
            firm: false,
            effect: Effect::None,
            set: Vec::new(),
            notes: Vec::new(),
        }
    }
    fn firm(code: ResponseCode, note: impl Into<String>) -> Outcome {
        Outcome {
            code,
            firm: true,
            effect: Effect::None,
            set: Vec::new(),
            notes: vec![note.into()],
        }
    }
}

impl Host {
    pub fn new(config: Config) -> Host {
        let mut tids = HashMap::new();
        let mut merchants = Vec::new();
        for (i, m) in config.merchants.iter().enumerate() {
            merchants.push(Merchant {
                mid: m.mid.0.clone(),
                fees: m.fees.iter().map(|(k, v)| (*k, *v)).collect(),
            });
            for range in &m.terminals {
                for tid in range.expand() {
                    tids.insert(tid, i);
                }
            }
        }
        Host {
            tids,
            merchants,
            cards: config.cards.clone(),
            rules: RuleSet::new(config.rules.iter().cloned().map(Rule::from).collect()),
            config,
            terminals: HashMap::new(),
            ids: IdGenerator::default(),
            stan: 0,
            security: Box::new(NoSecurity),
            spec: None,
            risk: Risk::default(),
        }
    }

    /// Replaces the security module (MAC/PIN/ARQC checks, key exchange).
    pub fn set_security(&mut self, mut security: Box<dyn Security>) {
        security.configure(&self.config.security);
        if let Some(spec) = &self.spec {
            security.set_spec(spec);
        }
        self.security = security;
    }

    /// Adds a one-shot rule, tried before the configured ones ("the host declines the
    /// next sale with 51", "the host does not answer the next 0200").
    pub fn push_override(&mut self, rule: Rule) {
        self.rules.overrides.push(rule);
    }

    /// Drops the one-shot rules that have not fired.
    pub fn clear_overrides(&mut self) -> usize {
        std::mem::take(&mut self.rules.overrides).len()
    }

    /// What to do with a frame that does not decode.
    pub fn bad_frames(&self) -> BadFrames {
        self.config.bad_frames
    }

    pub fn is_provisioned(&self, tid: &str) -> bool {
        self.tids.contains_key(tid)
    }

    /// A terminal's state (it exists once the terminal sent a valid message).
    pub fn terminal(&self, tid: &str) -> Option<&TerminalState> {
        self.terminals.get(tid)
    }

    /// Rehearses a host data error: `tid`'s last standing transaction is lost from its
    /// open batch ([`TerminalState::lose_last_standing`]).
    pub fn lose_last_standing(&mut self, tid: &str) -> Option<Txn> {
        self.terminals.get_mut(tid)?.lose_last_standing()
    }

    /// The dialect on the wire: the security module MACs messages as packed in it.
    pub fn set_spec(&mut self, spec: &Spec) {
        self.security.set_spec(spec);
        self.spec = Some(spec.clone());
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Message, ctx: &RequestContext) -> Decision {
        self.handle_wire(req, None, ctx)
    }

    /// Handles one request that came in as `wire` (MTI onwards, framing removed): its MAC
    /// is checked over those bytes.
    pub fn handle_wire(
        &mut self,
        req: &Message,
        wire: Option<&[u8]>,
        ctx: &RequestContext,
    ) -> Decision {
        let mti = req.mti.as_str().to_string();
        let flow = Flow::of(&mti);
        let tid = req.text(41).map(str::to_string).or_else(|| ctx.tid.clone());
        let amount = req.text(4).and_then(parse_amount);
        let pan = pan_of(req);
        let profile = pan.as_deref().map(|p| card_profile(&self.cards, p));

        // the rule (one firing is used even when the flow refuses the request)
        let field_text = |de: u16| req.text(de);
        let facts = Facts {
            mti: &mti,
            processing_code: req.text(3),
            amount,
            currency: req.text(49),
            pan: pan.as_deref(),
            card_profile: profile.map(|(name, _)| name),
            entry_mode: req.text(22),
            tid: tid.as_deref(),
            mid: req.text(42),
            field: Some(&field_text),
        };
        let rule = if flow == Flow::Response {
            None
        } else {
            self.rules.fire(&facts)
        };
        let card_kind = profile.map_or(CardKind::Credit, |(_, k)| k);

        if flow == Flow::Response {
            return Decision {
                flow: flow.name(),
                notes: vec![format!("{mti} is a response: nothing to answer")],
                ..Decision::default()
            };
        }

        let mut outcome = self.flow_outcome(flow, req, wire, &mti, tid.as_deref(), ctx, card_kind);
        outcome.notes.extend(self.security.take_notes());

        // the rule decides among answers the host would give
        let mut code = outcome.code;
        if let Some(rule) = &rule {
            if let Some(rule_code) = rule.code(amount) {
                if !outcome.firm && code.is_approved() {
                    code = rule_code;
                } else if rule_code != code {
                    outcome.notes.push(format!(
                        "rule {} would answer {rule_code}; the host's {code} stands",
                        rule.name
                    ));
                }
            }
        }
        // stand-in: the acquirer approves small amounts for an unavailable issuer
        if code.as_str() == "91" && !outcome.firm && self.config.stand_in.enabled {
            let limit = self.config.stand_in.limit.unwrap_or(Amount(0)).0;
            if amount.unwrap_or(0) <= limit && matches!(flow, Flow::Authorization | Flow::Financial)
            {
                code = ResponseCode::APPROVED;
                outcome.notes.push(format!(
                    "stand-in approval (issuer unavailable, amount within {})",
                    Amount(limit)
                ));
            }
        }

        // risk monitoring (velocity, unusual amounts) turns a purchase approval into a decline
        let purchase = matches!(flow, Flow::Authorization | Flow::Financial)
            && matches!(&outcome.effect, Effect::Record(t) if is_purchase(&t.processing_code));
        if let Some(card) = pan.as_deref().filter(|_| purchase).map(Pan::new) {
            if code.is_approved() {
                let risk = &self.config.risk;
                match self.risk.check(risk, &card, amount.unwrap_or(0), ctx.now) {
                    Some((risk_code, note)) => {
                        code = risk_code;
                        outcome.notes.push(note);
                    }
                    None => self.risk.approved(risk, &card, ctx.now),
                }
            }
        }

        let tid_key = tid.clone().unwrap_or_default();
        let approved = code.is_approved();
        let mut approval = None;
        let mut rrn = req.text(37).map(str::to_string);
        match std::mem::replace(&mut outcome.effect, Effect::None) {
            Effect::None => {}
            Effect::Record(mut txn) => {
                txn.code = code;
                if approved && matches!(flow, Flow::Authorization | Flow::Financial) {
                    txn.approval = Some(self.ids.approval_code());
                    txn.fee = if txn.kind == TxnKind::Debit {
                        self.fee(&tid_key, txn.card_kind, txn.amount)
                    } else {
                        0
                    };
                    if txn.fee > 0 {
                        outcome.notes.push(format!(
                            "merchant fee {} ({})",
                            Amount(txn.fee),
                            txn.card_kind.as_str()
                        ));
                    }
                } else if flow == Flow::Advice {
                    txn.approval = req.text(38).map(str::to_string);
                }
                approval = txn.approval.clone();
                rrn = Some(txn.rrn.clone());
                self.state(&tid_key).record(*txn);
            }
            Effect::RecordVoid(mut txn, original) => {
                txn.code = code;
                if approved {
                    txn.approval = Some(self.ids.approval_code());
                }
                approval = txn.approval.clone();
                rrn = Some(txn.rrn.clone());
                let t = self.state(&tid_key);
                if approved {
                    if let Some(orig) = t.batch.get_mut(original) {
                        orig.state = TxnState::Voided;
                    }
                    outcome.notes.push("original voided".into());
                }
                t.record(*txn);
            }
            Effect::Reverse(i) if approved => {
                let t = self.state(&tid_key);
                let mut restored = None;
                if let Some(orig) = t.batch.get_mut(i) {
                    orig.state = TxnState::Reversed;
                    if let TxnKind::Void(v) = orig.kind {
                        restored = Some(v);
                    }
                }
                if let Some(v) = restored.and_then(|v| t.batch.get_mut(v)) {
                    v.state = TxnState::Standing;
                    outcome
                        .notes
                        .push("reversal of a void: the voided transaction stands again".into());
                }
            }
            Effect::SignOn(on) if approved => self.state(&tid_key).signed_on = on,
            Effect::CloseBatch if approved => {
                self.state(&tid_key).close_batch();
                outcome.notes.push("batch closed".into());
            }
            Effect::Upload(u) if approved => {
                let t = self.state(&tid_key);
                let upload = t.upload.get_or_insert_with(Vec::new);
                upload.retain(|x| x.stan != u.stan);
                upload.push(u);
            }
            _ => outcome
                .notes
                .push(format!("answered {code}: the host's state is unchanged")),
        }

        // the answer
        let mut response = Message::new(req.mti.response());
        for de in ECHOED {
            if let Some(f) = req.get(de) {
                response.set(de, f.clone());
            }
        }
        if flow == Flow::Reversal {
            if let Some(f) = req.get(90) {
                response.set(90, f.clone());
            }
        }
        if matches!(flow, Flow::Authorization | Flow::Financial | Flow::Advice) {
            if let Some(rrn) = &rrn {
                response.set(37, Field::Text(rrn.clone().into()));
            }
            if let Some(a) = &approval {
                response.set(38, Field::Text(a.clone().into()));
            }
        }
        for (de, value) in std::mem::take(&mut outcome.set) {
            response.set(de, Field::Text(value.into()));
        }
        // a 1993 request (MTI version 1) is answered with the 1993 action code (n3)
        let de39 = match req.mti.as_str().as_bytes() {
            [b'1', class, ..] => crate::action_code::action_code(code, *class).to_string(),
            _ => code.as_str().to_string(),
        };
        response.set(39, Field::Text(de39.into()));
        self.security.sign(&tid_key, &mut response);

        let mut decision = Decision {
            response: Some(response),
            actions: Vec::new(),
            flow: flow.name(),
            rule: rule.as_ref().map(|r| r.name.clone()),
            code: Some(code),
            notes: outcome.notes,
        };
        if let Some(rule) = &rule {
            self.deliver(rule, req, ctx, &mut decision);
        }
        decision
    }

    fn deliver(&mut self, rule: &Rule, req: &Message, ctx: &RequestContext, d: &mut Decision) {
        let then = &rule.then;
        if let Some(delay) = then.delay {
            d.actions.push(Action::Delay(delay));
        }
        match then.answer {
            Delivery::Normal => {}
            Delivery::None => {
                d.response = None;
                d.notes.push(format!("rule {}: no answer", rule.name));
            }
            Delivery::Close => {
                d.response = None;
                d.actions.push(Action::Close);
            }
            Delivery::AnswerAndClose => d.actions.push(Action::Close),
            Delivery::Twice => d.actions.push(Action::Twice),
            Delivery::Truncated => d.actions.push(Action::Truncate),
            Delivery::Malformed => d.actions.push(Action::Malform),
        }
        if let Some(u) = &then.unsolicited {
            match self.unsolicited(u, req, ctx.now) {
                Ok(msg) => d.actions.push(Action::Unsolicited(msg)),
                Err(e) => d.notes.push(format!("unsolicited message not sent: {e}")),
            }
        }
    }

    /// A host-originated message (echo test, key change) for the terminal of `req`.
    fn unsolicited(
        &mut self,
        u: &UnsolicitedConfig,
        req: &Message,
        now: SystemTime,
    ) -> Result<Message, String> {
        let mti = Mti::new(&u.mti.0).map_err(|e| e.to_string())?;
        let mut msg = Message::new(mti);
        self.stan = self.stan % 999_999 + 1;
        msg.set(7, Field::Text(mmddhhmmss(now).into()));
        msg.set(11, Field::Text(format!("{:06}", self.stan).into()));
        for de in [41, 42] {
            if let Some(f) = req.get(de) {
                msg.set(de, f.clone());
            }
        }
        for (de, value) in &u.fields {
            msg.set(*de, Field::Text(value.clone().into()));
        }
        Ok(msg)
    }

    fn state(&mut self, tid: &str) -> &mut TerminalState {
        let mid = self
            .tids
            .get(tid)
            .and_then(|i| self.merchants.get(*i))
            .map(|m| m.mid.clone())
            .unwrap_or_default();
        self.terminals
            .entry(tid.to_string())
            .or_insert_with(|| TerminalState {
                mid,
                ..Default::default()
            })
    }

    fn fee(&self, tid: &str, kind: CardKind, amount: u64) -> u64 {
        let rate = self
            .tids
            .get(tid)
            .and_then(|i| self.merchants.get(*i))
            .and_then(|m| m.fees.iter().find(|(k, _)| *k == kind).map(|(_, r)| *r))
            .unwrap_or(0.0);
        (amount as f64 * rate / 100.0).round() as u64
    }

    /// The flow's own answer, before rules.
    #[allow(clippy::too_many_arguments)]
    fn flow_outcome(
        &mut self,
        flow: Flow,
        req: &Message,
        wire: Option<&[u8]>,
        mti: &str,
        tid: Option<&str>,
        ctx: &RequestContext,
        card_kind: CardKind,
    ) -> Outcome {
        // provisioning: an unknown TID, or a MID that is not the terminal's, is refused
        let Some(tid) = tid.filter(|t| self.tids.contains_key(*t)) else {
            return Outcome::firm(
                ResponseCode(*b"03"),
                format!("unknown terminal {:?}", tid.unwrap_or("(no DE 41)")),
            );
        };
        let own_mid = self
            .tids
            .get(tid)
            .and_then(|i| self.merchants.get(*i))
            .map(|m| m.mid.as_str())
            .unwrap_or("");
        if let Some(mid) = req.text(42) {
            if mid != own_mid {
                return Outcome::firm(
                    ResponseCode(*b"03"),
                    format!("unknown merchant {mid:?} for terminal {tid}"),
                );
            }
        }
        if let Err(code) = self.security.verify_wire(tid, req, wire) {
            return Outcome::firm(code, format!("security check failed: {}", code.as_str()));
        }
        let signed_on = self.terminals.get(tid).is_some_and(|t| t.signed_on);
        if self.config.sign_on.required
            && !signed_on
            && matches!(
                flow,
                Flow::Authorization | Flow::Financial | Flow::Advice | Flow::Reversal
            )
        {
            let code = self.config.sign_on.code.unwrap_or(ResponseCode(*b"91"));
            return Outcome::firm(code, format!("terminal {tid} has not signed on"));
        }
        let Some(stan) = req.text(11).and_then(|s| s.trim().parse::<u32>().ok()) else {
            if flow == Flow::Network || flow == Flow::Settlement {
                // tolerated: answered without matching
                return self.network_or_settlement(flow, req, tid, ctx);
            }
            return Outcome::firm(ResponseCode(*b"30"), "no STAN (DE 11): format error");
        };
        match flow {
            Flow::Authorization | Flow::Financial | Flow::Advice => {
                self.financial(flow, req, mti, tid, stan, ctx, card_kind)
            }
            Flow::Reversal => self.reversal(req, tid, stan),
            Flow::Network | Flow::Settlement => self.network_or_settlement(flow, req, tid, ctx),
            Flow::BatchUpload => {
                let orig_stan = original_data(req).and_then(|(_, s)| s).unwrap_or(stan);
                let mut o = Outcome::code(b"00");
                o.effect = Effect::Upload(Uploaded {
                    stan: orig_stan,
                    processing_code: req.text(3).unwrap_or("000000").to_string(),
                    amount: req.text(4).and_then(parse_amount).unwrap_or(0),
                });
                o.notes.push(format!("batch upload of STAN {orig_stan:06}"));
                o
            }
            Flow::Response | Flow::Unsupported => {
                Outcome::firm(ResponseCode(*b"12"), format!("{mti} is not supported"))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn financial(
        &mut self,
        flow: Flow,
        req: &Message,
        mti: &str,
        tid: &str,
        stan: u32,
        ctx: &RequestContext,
        card_kind: CardKind,
    ) -> Outcome {
        let processing_code = req.text(3).unwrap_or("000000").to_string();
        let amount = req.text(4).and_then(parse_amount).unwrap_or(0);
        let repeat = mti.ends_with(['1', '3']);
        let class = mti.get(1..3).unwrap_or("");
        let settles = mti.get(1..2) == Some("2");

        // the same TID + STAN + amount in the open batch
        let earlier = self.terminals.get(tid).and_then(|t| {
            let i = *t.by_stan.get(&stan)?;
            let e = t.batch.get(i)?;
            (e.amount == amount && e.mti.get(1..3) == Some(class)).then_some(e)
        });
        if let Some(e) = earlier {
            if flow == Flow::Advice || repeat {
                let mut o = Outcome::firm(
                    e.code,
                    format!("repeat of STAN {stan:06}: answered as before"),
                );
                o.set.push((37, e.rrn.clone()));
                if let Some(a) = &e.approval {
                    o.set.push((38, a.clone()));
                }
                return o;
            }
            match self.config.duplicates.mode {
                DuplicateMode::Decline => {
                    return Outcome::firm(
                        self.config.duplicates.code,
                        format!("duplicate of STAN {stan:06} (same TID, STAN and amount)"),
                    )
                }
                DuplicateMode::Repeat => {
                    let mut o = Outcome::firm(
                        e.code,
                        format!("duplicate of STAN {stan:06}: answered as before"),
                    );
                    o.set.push((37, e.rrn.clone()));
                    if let Some(a) = &e.approval {
                        o.set.push((38, a.clone()));
                    }
                    return o;
                }
                DuplicateMode::Off => {}
            }
        }

        let txn = Txn {
            mti: mti.to_string(),
            processing_code: processing_code.clone(),
            kind: kind_of(&processing_code, settles),
            stan,
            amount,
            currency: req.text(49).map(str::to_string),
            rrn: req
                .text(37)
                .map(str::to_string)
                .unwrap_or_else(|| self.ids.rrn(ctx.now)),
            approval: None,
            code: ResponseCode::APPROVED,
            state: TxnState::Standing,
            settles,
            pan_masked: pan_of(req).map(|p| mask_pan(&p)),
            card_kind,
            fee: 0,
            conn: ctx.conn,
            at: ctx.now,
        };

        if let TxnKind::Void(_) = txn.kind {
            // find the original: DE 37 (its RRN), else DE 90 (its MTI and STAN)
            let t = self.terminals.get(tid);
            let by_rrn = req.text(37).and_then(|rrn| {
                t?.batch
                    .iter()
                    .rposition(|x| x.rrn == rrn && !matches!(x.kind, TxnKind::Void(_)))
            });
            let by_orig = || {
                let (_, s) = original_data(req)?;
                t?.by_stan.get(&s?).copied()
            };
            let Some(original) = by_rrn.or_else(by_orig) else {
                return Outcome::firm(
                    self.config.reversals.unknown_original,
                    "void of an unknown transaction",
                );
            };
            let state = t.and_then(|t| t.batch.get(original)).map(|o| o.state);
            let mut txn = txn;
            txn.kind = TxnKind::Void(original);
            // a void's own RRN is new; DE 37 named the original
            txn.rrn = self.ids.rrn(ctx.now);
            let mut o = Outcome::code(b"00");
            match state {
                Some(TxnState::Voided) => {
                    o.notes
                        .push("original already voided: nothing changes".into());
                    o.effect = Effect::Record(Box::new(txn));
                }
                Some(TxnState::Reversed) => {
                    return Outcome::firm(ResponseCode(*b"12"), "void of a reversed transaction")
                }
                _ => o.effect = Effect::RecordVoid(Box::new(txn), original),
            }
            return o;
        }

        let mut o = Outcome::code(b"00");
        if flow == Flow::Advice && class == "22" {
            // a completion advice names its pre-authorisation (DE 90, or DE 37 its RRN);
            // it settles, the authorisation (0100) never does
            if let Some(auth) = self.authorisation_of(req, tid) {
                o.notes.push(format!(
                    "completes the {} of STAN {:06} (authorised {})",
                    auth.mti,
                    auth.stan,
                    Amount(auth.amount)
                ));
                if amount > auth.amount {
                    o.notes
                        .push("the completion's amount is above the authorised amount".into());
                }
            }
        }
        o.effect = Effect::Record(Box::new(txn));
        o
    }

    /// The approved authorisation (01xx) a completion advice names: by DE 90 (original
    /// MTI and STAN), else by DE 37 (its RRN).
    fn authorisation_of(&self, req: &Message, tid: &str) -> Option<&Txn> {
        let t = self.terminals.get(tid)?;
        let is_auth = |x: &&Txn| x.mti.get(1..2) == Some("1") && x.code.is_approved();
        let by_orig = original_data(req)
            .filter(|(m, _)| m.get(1..2) == Some("1"))
            .and_then(|(_, s)| t.batch.get(*t.by_stan.get(&s?)?))
            .filter(is_auth);
        by_orig.or_else(|| {
            let rrn = req.text(37)?;
            t.batch.iter().rev().filter(is_auth).find(|x| x.rrn == rrn)
        })
    }

    fn reversal(&mut self, req: &Message, tid: &str, stan: u32) -> Outcome {
        let (orig_mti, orig_stan) = match original_data(req) {
            Some((m, s)) => (Some(m), s.unwrap_or(stan)),
            None => (None, stan),
        };
        let t = self.terminals.get(tid);
        let found = t.and_then(|t| {
            let i = *t.by_stan.get(&orig_stan)?;
            let x = t.batch.get(i)?;
            orig_mti
                .as_deref()
                .is_none_or(|m| m.get(1..3) == x.mti.get(1..3))
                .then_some((i, x))
        });
        let Some((i, original)) = found else {
            return Outcome::firm(
                self.config.reversals.unknown_original,
                format!("reversal of an unknown transaction (STAN {orig_stan:06})"),
            );
        };
        let mut o = Outcome::code(b"00");
        if original.state == TxnState::Reversed {
            o.notes.push(format!(
                "STAN {orig_stan:06} already reversed: answered again, nothing reversed twice"
            ));
            return o;
        }
        if !original.code.is_approved() {
            o.notes.push(format!(
                "STAN {orig_stan:06} was declined ({}): nothing to reverse",
                original.code
            ));
        }
        if req.text(4).and_then(parse_amount) != Some(original.amount) {
            o.notes
                .push("the reversal's amount differs from the original's".into());
        }
        o.notes
            .push(format!("reverses {} STAN {orig_stan:06}", original.mti));
        o.effect = Effect::Reverse(i);
        o
    }

    fn network_or_settlement(
        &mut self,
        flow: Flow,
        req: &Message,
        tid: &str,
        _ctx: &RequestContext,
    ) -> Outcome {
        if flow == Flow::Settlement {
            return self.settlement(req, tid);
        }
        // DE 70 (1987), or DE 24 function code (1993: 801 sign-on, 802 sign-off, 831 echo,
        // 811 key change)
        let code = req
            .text(70)
            .or_else(|| req.text(24).filter(|_| req.mti.as_str().starts_with('1')))
            .unwrap_or("");
        let mut o = Outcome::code(b"00");
        match code {
            "001" | "801" => {
                o.effect = Effect::SignOn(true);
                o.notes.push("sign-on".into());
            }
            "002" | "802" => {
                o.effect = Effect::SignOn(false);
                o.notes.push("sign-off".into());
            }
            "301" | "831" => o.notes.push("echo test".into()),
            "101" | "161" | "811" => match self.security.key_exchange(tid, req) {
                Ok(fields) if fields.is_empty() => o
                    .notes
                    .push("key exchange acknowledged (no security module: no keys sent)".into()),
                Ok(fields) => {
                    o.notes
                        .push(format!("key exchange: {} fields set", fields.len()));
                    o.set.extend(fields);
                }
                Err(code) => return Outcome::firm(code, "key exchange refused"),
            },
            other => o.notes.push(format!("network management code {other:?}")),
        }
        o
    }

    fn settlement(&mut self, req: &Message, tid: &str) -> Outcome {
        let t = self.state(tid);
        let (host, basis) = match &t.upload {
            Some(up) => (
                TerminalState::uploaded_totals(up),
                format!("the {} transactions uploaded", up.len()),
            ),
            None => (
                t.totals(),
                format!("the host's {} transactions", t.batch.len()),
            ),
        };
        let sent = |de: u16| req.text(de).map(str::to_string);
        if crate::settlement::FIELDS
            .iter()
            .all(|(de, _)| req.get(*de).is_none())
            && req.get(97).is_none()
        {
            return Outcome::firm(ResponseCode(*b"30"), "settlement without totals (DE 74-97)");
        }
        match host.compare(sent) {
            Err(de) => Outcome::firm(ResponseCode(*b"30"), format!("DE {de} is not a number")),
            Ok(diffs) if diffs.is_empty() => {
                let mut o = Outcome::code(b"00");
                o.notes.push(format!("in balance with {basis}"));
                o.effect = Effect::CloseBatch;
                o
            }
            Ok(diffs) => {
                let list: Vec<String> = diffs.iter().map(Difference::to_string).collect();
                let mut o = Outcome::firm(
                    ResponseCode(*b"95"),
                    format!("out of balance with {basis}: {}", list.join("; ")),
                );
                // after a failed balance, the terminal uploads its batch afresh
                t.upload = None;
                if req.text(3).is_some_and(|p| p.starts_with("96")) {
                    o.notes.push("final settlement still out of balance".into());
                }
                o
            }
        }
    }
}

/// The card profile of a PAN: name and kind (first matching prefix).
fn card_profile<'a>(cards: &'a [CardProfileConfig], pan: &str) -> (&'a str, CardKind) {
    cards
        .iter()
        .find(|c| c.prefixes.iter().any(|p| pan.starts_with(&p.0)))
        .map_or(("unknown", CardKind::Credit), |c| (c.name.as_str(), c.kind))
}

/// DE 4 as minor units.
fn parse_amount(text: &str) -> Option<u64> {
    let t = text.trim();
    (!t.is_empty() && t.len() <= 18 && t.bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.parse().ok())
        .flatten()
}

/// The clear PAN from DE 2, or from track 2 (DE 35) before its separator.
fn pan_of(req: &Message) -> Option<String> {
    if let Some(p) = req.text(2) {
        return Some(p.to_string());
    }
    let t2 = req.text(35)?;
    let end = t2.find(['=', 'D', 'd']).unwrap_or(t2.len());
    t2.get(..end).map(str::to_string)
}

/// Original data elements (DE 90 in 1987, DE 56 in 1993 messages): original MTI and,
/// when readable, original STAN.
fn original_data(req: &Message) -> Option<(String, Option<u32>)> {
    let de = if req.mti.as_str().starts_with('1') {
        56
    } else {
        90
    };
    let text = req.text(de)?;
    let mti = text.get(..4)?.to_string();
    let stan = text.get(4..10).and_then(|s| s.parse().ok());
    Some((mti, stan))
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
