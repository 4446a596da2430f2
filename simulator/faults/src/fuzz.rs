//! Fuzz entry points (`fuzz/fuzz_targets/faults_*.rs` call these; `tests/props.rs` replays
//! the committed corpora through them). Each checks a round-trip oracle and panics only
//! when the oracle fails.

use crate::{parse_config, Config, SerialSpec, ToxicSpec};

/// A toxic body (`POST /proxies/{p}/toxics`): whatever parses must print and parse back to
/// the same toxic, and an update with an empty object must change nothing.
pub fn toxic(data: &[u8]) {
    let Ok(spec) = ToxicSpec::from_json(data) else {
        return;
    };
    let printed = spec.to_json().to_string();
    let again = ToxicSpec::from_json(printed.as_bytes());
    assert_eq!(again.as_ref(), Ok(&spec), "toxic round trip of {printed}");
    assert_eq!(spec.updated(b"{}").as_ref(), Ok(&spec), "empty update");
    let _ = spec.updated(data);
}

/// A config file (JSON populate array or YAML): whatever parses must print as a populate
/// array that parses back to the same proxies.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(Config { proxies, .. }) = parse_config(text) else {
        return;
    };
    let printed =
        serde_json::Value::Array(proxies.iter().map(|p| p.to_json()).collect()).to_string();
    let again = parse_config(&printed).map(|c| c.proxies);
    assert_eq!(
        again.as_ref(),
        Ok(&proxies),
        "config round trip of {printed}"
    );
}

/// A serial fault list (`noise=0.01,rx:drop=0.001,...`): whatever parses must print and
/// parse back to the same list, and its toxics must print and parse back as toxics.
pub fn serial_spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = text.parse::<SerialSpec>() else {
        return;
    };
    let printed = spec.to_string();
    assert_eq!(
        printed.parse::<SerialSpec>().as_ref(),
        Ok(&spec),
        "serial spec round trip of {printed}"
    );
    for toxic in spec.toxics(9600) {
        let json = toxic.to_json().to_string();
        assert_eq!(
            ToxicSpec::from_json(json.as_bytes()).as_ref(),
            Ok(&toxic),
            "serial toxic round trip of {json}"
        );
    }
}
