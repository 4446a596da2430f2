//! Pre-authorisation (a reservation, ZVT 06 22 → ISO 0100) and its completion (ZVT 06 24
//! book total → ISO 0220 advice).

use cucumber::when;
use poslab_zvt::ecr::EcrCommand;

use super::{amount, displayed};
use crate::run::world::{PosWorld, WAIT};

#[when(regex = r"^the cashier starts a pre-authorisation of (\d+(?:\.\d{1,2})?) EUR$")]
async fn pre_authorisation(w: &mut PosWorld, value: String) {
    w.ecr(EcrCommand::PreAuthorise {
        amount: amount(&value),
        currency: Some(978),
    })
    .await;
    let mark = w.mark;
    w.wait_for(WAIT, "the terminal asking for a card", |e| {
        displayed(e.get(mark..).unwrap_or(&[]))
            .iter()
            .any(|t| t.contains("CARD"))
            .then_some(())
    })
    .await;
}

#[when(regex = r"^the cashier completes the pre-authorisation with (\d+(?:\.\d{1,2})?) EUR$")]
async fn completes(w: &mut PosWorld, value: String) {
    w.settle().await;
    let receipt = w
        .outcomes
        .iter()
        .rev()
        .find(|o| matches!(o.command, EcrCommand::PreAuthorise { .. }))
        .and_then(|o| o.receipt)
        .expect("no earlier pre-authorisation with a receipt number");
    w.ecr(EcrCommand::BookTotal {
        receipt,
        amount: amount(&value),
    })
    .await;
    w.settle().await;
}
