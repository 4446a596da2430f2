//! DE 97 (amount, net settlement) is x+n16 in ISO 8583:1987 and 1993: a `C` (credit) or
//! `D` (debit) sign and 16 digits. A 0500 from a terminal carries it; the host compares it.

use poslab_iso8583::{Field, Message, Mti, Spec};

#[test]
fn de97_carries_its_credit_or_debit_sign_in_every_dialect_that_defines_it() {
    for (name, mti) in [
        ("iso87ascii", "0500"),
        ("iso87binary", "0500"),
        ("iso93ascii", "1500"),
    ] {
        let spec = Spec::builtin(name).unwrap();
        for net in ["D0000000000012345", "C0000000000000500"] {
            let mut m = Message::new(Mti::new(mti).unwrap());
            m.set(11, Field::Text("000001".into()));
            m.set(97, Field::Text(net.into()));
            let bytes = spec.pack(&m).unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = spec
                .unpack(&bytes)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(back.text(97), Some(net), "{name}");
        }
    }
}
