//! The cashier (at the cash register), the cardholder (card and PIN pad) and the operator
//! (keys of the terminal's menu), and power.

use std::time::Duration;

use cucumber::{then, when};
use poslab_emv::profile::Interface;
use poslab_terminal::keypad::Key;
use poslab_zvt::ecr::EcrCommand;

use super::{amount, displayed};
use crate::run::world::{PosWorld, WAIT};

#[when(regex = r"^the cashier starts a (purchase|refund) of (\d+(?:\.\d{1,2})?) EUR$")]
async fn cashier_starts(w: &mut PosWorld, what: String, value: String) {
    let amount = amount(&value);
    let command = if what == "refund" {
        EcrCommand::Refund {
            amount,
            currency: Some(978),
        }
    } else {
        EcrCommand::Purchase {
            amount,
            currency: Some(978),
        }
    };
    w.ecr(command).await;
    let mark = w.mark;
    // the terminal asks for the card before anything else happens
    w.wait_for(WAIT, "the terminal asking for a card", |e| {
        let since = e.get(mark..).unwrap_or(&[]);
        displayed(since)
            .iter()
            .rev()
            .find(|t| t.contains("CARD") || t.contains("HOST UNAVAILABLE"))
            .cloned()
    })
    .await;
}

#[when(regex = r"^the cashier starts a purchase of (\d+(?:\.\d{1,2})?) EUR at a real terminal$")]
async fn cashier_starts_real(w: &mut PosWorld, value: String) {
    // a real terminal's display is its own: nothing to wait for on the pad link
    w.ecr(EcrCommand::Purchase {
        amount: amount(&value),
        currency: Some(978),
    })
    .await;
}

#[when(expr = "the cashier voids the last purchase")]
async fn cashier_voids(w: &mut PosWorld) {
    w.settle().await;
    let receipt = w
        .outcomes
        .iter()
        .rev()
        .find(|o| matches!(o.command, EcrCommand::Purchase { .. }))
        .and_then(|o| o.receipt)
        .expect("no earlier purchase with a receipt number to void");
    w.ecr(EcrCommand::Reverse { receipt }).await;
    w.settle().await;
}

#[when(expr = "the cashier closes the day")]
async fn close_of_day(w: &mut PosWorld) {
    w.ecr(EcrCommand::EndOfDay).await;
    w.settle().await;
}

async fn present(w: &mut PosWorld, card: &str, interface: Interface) {
    let b = w.bench().await;
    b.present_card(card, interface)
        .await
        .unwrap_or_else(|e| panic!("card {card}: {e:#}"));
}

async fn type_pin(w: &mut PosWorld, pin: &str) {
    // the prompt of this sale (the mark is its start), not an earlier sale's: keys typed
    // before the terminal asks are drained and lost
    let mark = w.mark;
    w.wait_for(WAIT, "the terminal asking for the PIN (ENTER PIN)", |e| {
        let since = e.get(mark..).unwrap_or(&[]);
        displayed(since)
            .iter()
            .any(|t| t == "ENTER PIN")
            .then_some(())
    })
    .await;
    let b = w.bench().await;
    for d in pin.bytes() {
        b.press(Key::Digit(d - b'0'));
    }
    b.press(Key::Enter);
}

#[when(regex = r#"^the cardholder (inserts|taps) card "([^"]+)"$"#)]
async fn card_only(w: &mut PosWorld, how: String, card: String) {
    let interface = if how == "taps" {
        Interface::Contactless
    } else {
        Interface::Contact
    };
    present(w, &card, interface).await;
}

#[when(regex = r#"^the cardholder (inserts|taps) card "([^"]+)" and enters PIN "(\d{4,12})"$"#)]
async fn card_and_pin(w: &mut PosWorld, how: String, card: String, pin: String) {
    let interface = if how == "taps" {
        Interface::Contactless
    } else {
        Interface::Contact
    };
    present(w, &card, interface).await;
    type_pin(w, &pin).await;
}

#[when(expr = "the cardholder enters PIN {string}")]
async fn enters_pin(w: &mut PosWorld, pin: String) {
    type_pin(w, &pin).await;
}

#[when(expr = "the cardholder swipes card {string}")]
async fn swipes(w: &mut PosWorld, card: String) {
    let b = w.bench().await;
    b.swipe(&card)
        .unwrap_or_else(|e| panic!("card {card}: {e:#}"));
}

#[when(expr = "the cardholder cancels")]
async fn cancels(w: &mut PosWorld) {
    w.bench().await.press(Key::Cancel);
}

#[when(expr = "the sale is over")]
async fn sale_over(w: &mut PosWorld) {
    w.settle().await;
}

#[when(regex = r#"^(\d+) purchases of (\d+(?:\.\d{1,2})?) EUR are made with card "([^"]+)"$"#)]
async fn many(w: &mut PosWorld, n: usize, value: String, card: String) {
    assert!(n <= 200, "at most 200 purchases in one step");
    for _ in 0..n {
        cashier_starts(w, "purchase".into(), value.clone()).await;
        card_and_pin(w, "inserts".into(), card.clone(), "1234".into()).await;
        w.settle().await;
    }
}

#[when(expr = "the terminal loses power and comes back")]
async fn power_loss(w: &mut PosWorld) {
    // the register's command lives on: it asks for the last result once the terminal is back
    w.bench()
        .await
        .power_cycle()
        .await
        .unwrap_or_else(|e| panic!("power cycle: {e:#}"));
}

#[when(expr = "the terminal hangs")]
async fn hangs(w: &mut PosWorld) {
    w.bench()
        .await
        .hang()
        .await
        .unwrap_or_else(|e| panic!("hang: {e:#}"));
}

/// The watchdog finds the hung terminal and restarts it; the register's command asks for
/// the last result once the terminal is back, as after a power cut.
#[then(regex = r"^the watchdog restarts the terminal within (\d+) (seconds|minutes?)$")]
async fn watchdog_restarts(w: &mut PosWorld, n: u64, unit: String) {
    let within = Duration::from_secs(if unit.starts_with("minute") {
        n * 60
    } else {
        n
    });
    let silent = w
        .bench()
        .await
        .watchdog(within)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", w.excerpt(20)));
    assert!(
        silent > Duration::ZERO,
        "the watchdog restarted a terminal that was not silent"
    );
}

#[when(
    regex = r"^the operator (prints the X report|closes the day on the terminal|runs the self test|switches training mode (?:on|off))$"
)]
async fn operator(w: &mut PosWorld, what: String) {
    w.settle().await;
    w.set_mark();
    let key = match what.as_str() {
        "prints the X report" => 1,
        "closes the day on the terminal" => 2,
        "runs the self test" => 3,
        _ => 4,
    };
    w.bench().await.press(Key::Function(key));
    if key == 4 {
        let on = what.ends_with("on");
        let want = if on {
            "TRAINING MODE ON"
        } else {
            "TRAINING MODE OFF"
        };
        w.wait_for(WAIT, want, |e| {
            displayed(e)
                .last()
                .filter(|t| t.as_str() == want)
                .map(|_| ())
        })
        .await;
    }
}

#[when(expr = "{int} seconds pass")]
async fn time_passes(_w: &mut PosWorld, secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
