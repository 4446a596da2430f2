//! Semantic checks: what the types cannot say. Each problem names the path of the key (or
//! value) at fault; `Bench::load` turns paths into lines.

use std::collections::BTreeSet;

use crate::model::{BenchFile, Link, Node, NodeKind, Process, Via};
use crate::placeholder::{self, Placeholder};
use crate::{kind_list, Wire};

pub(crate) struct Found {
    pub path: String,
    /// Point at the value rather than the key.
    pub at_value: bool,
    pub message: String,
}

struct Problems(Vec<Found>);

impl Problems {
    fn key(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Found {
            path: path.into(),
            at_value: false,
            message: message.into(),
        });
    }
    fn value(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Found {
            path: path.into(),
            at_value: true,
            message: message.into(),
        });
    }
}

pub(crate) fn kind_of(name: &str, node: &Node) -> Option<NodeKind> {
    node.kind.or_else(|| NodeKind::from_name(name))
}

pub(crate) fn split_link(key: &str) -> Option<(&str, &str)> {
    let (from, to) = key.split_once("->")?;
    let (from, to) = (from.trim(), to.trim());
    (!from.is_empty() && !to.is_empty()).then_some((from, to))
}

pub(crate) fn neighbours<'a>(file: &'a BenchFile, node: &str) -> BTreeSet<&'a str> {
    file.links
        .keys()
        .filter_map(|key| split_link(key))
        .filter_map(|(from, to)| {
            if from == node {
                Some(to)
            } else if to == node {
                Some(from)
            } else {
                None
            }
        })
        .collect()
}

pub(crate) fn check(file: &BenchFile) -> Vec<Found> {
    let mut p = Problems(Vec::new());
    if file.nodes.is_empty() {
        p.key(
            "nodes",
            "a bench names at least one node (e.g. `terminal: emulated`)",
        );
    }
    for (name, node) in &file.nodes {
        check_node(file, name, node, &mut p);
    }
    check_links(file, &mut p);
    p.0
}

fn check_node(file: &BenchFile, name: &str, node: &Node, p: &mut Problems) {
    let at = format!("nodes.{name}");
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || name.is_empty()
    {
        p.key(
            &at,
            format!("node name `{name}`: use letters, digits, `_` and `-` (it is used in placeholders like `{{{name}_pty}}`)"),
        );
    }
    if name.ends_with("_pty") || name.ends_with("_port") || name == "workdir" || name == "poslab" {
        p.key(
            &at,
            format!("node name `{name}` clashes with a placeholder (`_pty`, `_port`, `workdir`, `poslab`)"),
        );
    }
    if kind_of(name, node).is_none() {
        p.key(
            &at,
            format!(
                "unknown node kind `{name}`: name the node after its kind or add `kind:` (one of {})",
                kind_list()
            ),
        );
    }
    let real = node.attachments();
    if node.emulated.is_some() && !real.is_empty() {
        let names: Vec<&str> = real.iter().map(|v| v.as_str()).collect();
        p.key(
            format!("{at}.emulated"),
            format!(
                "node `{name}` is both emulated and real ({}); keep `emulated` or the real attachment, not both",
                names.join(", ")
            ),
        );
    }
    if let Some(emulated) = &node.emulated {
        if let Some(listen) = &emulated.listen {
            if let Err(e) = host_port(listen, true) {
                p.value(format!("{at}.emulated.listen"), e);
            }
        }
        if let Some(vpcd) = &emulated.vpcd {
            if let Err(e) = host_port(vpcd, false) {
                p.value(format!("{at}.emulated.vpcd"), e);
            }
        }
    }
    if let Some(tcp) = &node.tcp {
        if let Err(e) = host_port(tcp, false) {
            p.value(format!("{at}.tcp"), e);
        }
    }
    if let Some(listen) = &node.listen {
        if let Err(e) = host_port(listen, true) {
            p.value(format!("{at}.listen"), e);
        }
    }
    if let Some(serial) = &node.serial {
        let at = format!("{at}.serial");
        if serial.path.trim().is_empty() {
            p.value(format!("{at}.path"), "empty serial device path");
        }
        if serial.baud == 0 || serial.baud > 4_000_000 {
            p.value(
                format!("{at}.baud"),
                format!("baud rate {} out of range (1 to 4000000)", serial.baud),
            );
        }
        if !(5..=8).contains(&serial.data_bits) {
            p.value(
                format!("{at}.data_bits"),
                format!("{} data bits: expected 5, 6, 7 or 8", serial.data_bits),
            );
        }
        if !(1..=2).contains(&serial.stop_bits) {
            p.value(
                format!("{at}.stop_bits"),
                format!("{} stop bits: expected 1 or 2", serial.stop_bits),
            );
        }
    }
    if let Some(process) = &node.process {
        check_process(file, name, process, p);
    }
    if let Some(power) = &node.power {
        if real.is_empty() {
            p.key(
                format!("{at}.power"),
                format!("node `{name}` is emulated: power hooks switch a real device (an emulated node is powered off from a step)"),
            );
        }
        if power.off.trim().is_empty() {
            p.value(format!("{at}.power.off"), "empty power-off command");
        }
        if power.on.trim().is_empty() {
            p.value(format!("{at}.power.on"), "empty power-on command");
        }
        if power.timeout.get().is_zero() {
            p.value(format!("{at}.power.timeout"), "a zero time limit");
        }
    }
}

fn check_process(file: &BenchFile, name: &str, process: &Process, p: &mut Problems) {
    let at = format!("nodes.{name}.process");
    if process.command.trim().is_empty() {
        p.value(format!("{at}.command"), "empty command");
    }
    let linked = neighbours(file, name);
    let mut templates: Vec<(String, &String)> = vec![(format!("{at}.command"), &process.command)];
    for (i, arg) in process.args.iter().enumerate() {
        templates.push((format!("{at}.args[{i}]"), arg));
    }
    for (key, value) in &process.env {
        templates.push((format!("{at}.env.{key}"), value));
    }
    if let Some(cwd) = &process.cwd {
        templates.push((format!("{at}.cwd"), cwd));
    }
    let own = templates.len();
    for (i, arg) in process.exchange.iter().flat_map(|e| &e.args).enumerate() {
        templates.push((format!("{at}.exchange.args[{i}]"), arg));
    }
    for (n, (path, template)) in templates.into_iter().enumerate() {
        match placeholder::holes(template) {
            Err(e) => p.value(&path, e.to_string()),
            Ok(holes) => {
                for hole in holes {
                    if hole == Placeholder::Serial && n < own {
                        p.value(
                            &path,
                            "placeholder {serial} is a replacement's serial number: only in exchange.args",
                        );
                        continue;
                    }
                    let Some(node) = hole.node() else { continue };
                    if !file.nodes.contains_key(node) {
                        let names: Vec<&str> = file.nodes.keys().map(String::as_str).collect();
                        p.value(
                            &path,
                            format!(
                                "placeholder {hole} is not provided by any node: no node `{node}` (nodes: {})",
                                names.join(", ")
                            ),
                        );
                    } else if node == name {
                        p.value(
                            &path,
                            format!("placeholder {hole} names the process node itself"),
                        );
                    } else if !linked.contains(node) {
                        p.value(
                            &path,
                            format!(
                                "placeholder {hole}: node `{node}` has no link to `{name}`; add `links: {{ {name}->{node}: {{}} }}` (or the other way round)"
                            ),
                        );
                    } else if matches!(
                        hole,
                        Placeholder::Addr(_) | Placeholder::Port(_) | Placeholder::Listen(_)
                    ) && file.nodes.get(node).is_some_and(|n| !n.is_emulated())
                    {
                        p.value(
                            &path,
                            format!("placeholder {hole}: node `{node}` is real; poslab serves placeholders only for emulated nodes"),
                        );
                    }
                }
            }
        }
    }
    if let Some(ready) = &process.ready {
        if let Err(e) = regex::Regex::new(&ready.pattern) {
            p.value(
                format!("{at}.ready.pattern"),
                format!("not a regular expression: {}", one_line(&e.to_string())),
            );
        }
        if ready.timeout.get().is_zero() {
            p.value(format!("{at}.ready.timeout"), "a zero time limit");
        }
    }
    if let Some(watchdog) = &process.watchdog {
        if watchdog.hang_timeout.get().is_zero() {
            p.value(
                format!("{at}.watchdog.hang_timeout"),
                "a zero hang timeout would call every run a hang",
            );
        }
        if let Some(heartbeat) = &watchdog.heartbeat {
            if let Err(e) = regex::Regex::new(heartbeat) {
                p.value(
                    format!("{at}.watchdog.heartbeat"),
                    format!("not a regular expression: {}", one_line(&e.to_string())),
                );
            }
        }
    }
}

fn check_links(file: &BenchFile, p: &mut Problems) {
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (key, link) in &file.links {
        let at = format!("links.{key}");
        let Some((from, to)) = split_link(key) else {
            p.key(
                &at,
                format!("link `{key}`: expected `FROM->TO`, e.g. `terminal->host`"),
            );
            continue;
        };
        let mut ends_known = true;
        for end in [from, to] {
            if !file.nodes.contains_key(end) {
                ends_known = false;
                let names: Vec<&str> = file.nodes.keys().map(String::as_str).collect();
                p.key(
                    &at,
                    format!(
                        "link `{key}`: no node `{end}` (nodes: {})",
                        names.join(", ")
                    ),
                );
            }
        }
        if from == to {
            p.key(&at, format!("link `{key}` joins a node to itself"));
            continue;
        }
        let pair = if from < to {
            (from.to_owned(), to.to_owned())
        } else {
            (to.to_owned(), from.to_owned())
        };
        if !seen.insert(pair) {
            p.key(
                &at,
                format!("link `{key}`: these two nodes are already linked"),
            );
        }
        for (i, fault) in link.faults.iter().enumerate() {
            let fat = format!("{at}.faults[{i}]");
            if !(0.0..=1.0).contains(&fault.toxicity) {
                p.value(
                    format!("{fat}.toxicity"),
                    format!(
                        "toxicity {} out of range: a probability from 0 to 1",
                        fault.toxicity
                    ),
                );
            }
            if fault.kind.trim().is_empty() {
                p.value(format!("{fat}.type"), "empty fault type");
            } else if (0.0..=1.0).contains(&fault.toxicity) {
                if let Err(err) = fault.to_toxic_specs() {
                    p.value(
                        format!("{fat}.type"),
                        format!("fault `{}`: {err}", fault.kind),
                    );
                }
            }
        }
        if ends_known {
            if let Err(e) = wire(file, from, to, link) {
                let path = if link.via.is_some() {
                    format!("{at}.via")
                } else {
                    at.clone()
                };
                p.key(path, e);
            }
        }
    }
}

/// How a link is carried; `Err` says why it cannot be.
pub(crate) fn wire(file: &BenchFile, from: &str, to: &str, link: &Link) -> Result<Wire, String> {
    let (Some(a), Some(b)) = (file.nodes.get(from), file.nodes.get(to)) else {
        return Err(format!(
            "link `{from}->{to}` names a node that does not exist"
        ));
    };
    let (real_name, real, emulated) = match (a.is_emulated(), b.is_emulated()) {
        (true, true) => {
            return match link.via {
                None => Ok(Wire::Memory),
                Some(via) => Err(format!(
                    "`via: {}` but both ends are emulated (their link is in memory)",
                    via.as_str()
                )),
            }
        }
        (false, false) => {
            return Err(format!(
                "both `{from}` and `{to}` are real: poslab sits on every link it knows, so one end must be emulated (leave a link between two real devices out of the bench)"
            ))
        }
        (false, true) => (from, a, b),
        (true, false) => (to, b, a),
    };
    let peer_listens = emulated
        .emulated
        .as_ref()
        .is_some_and(|e| e.listen.is_some());
    let attachments = real.attachments();
    let via = match link.via {
        Some(Via::Peer) if !peer_listens => {
            return Err(format!(
                "`via: peer` but the emulated end has no `emulated: {{ listen: ADDR }}` for `{real_name}` to dial"
            ))
        }
        Some(Via::Peer) => Via::Peer,
        Some(via) if !attachments.contains(&via) => {
            return Err(format!(
                "`via: {}` but node `{real_name}` has no `{}` attachment",
                via.as_str(),
                via.as_str()
            ))
        }
        Some(via) => via,
        None if attachments.contains(&Via::Process) => Via::Process,
        None if peer_listens => Via::Peer,
        None => match attachments.as_slice() {
            [one] => *one,
            several => {
                let names: Vec<&str> = several.iter().map(|v| v.as_str()).collect();
                return Err(format!(
                    "node `{real_name}` has several attachments ({}); say which carries this link with `via:`",
                    names.join(", ")
                ));
            }
        },
    };
    Ok(Wire::Real {
        node: real_name.to_owned(),
        via,
    })
}

/// Checks `HOST:PORT`; `allow_zero` for listen addresses (0: any free port).
pub(crate) fn host_port(text: &str, allow_zero: bool) -> Result<(String, u16), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("`{text}`: expected HOST:PORT"));
    };
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(format!("`{text}`: no host before the port"));
    }
    if host.contains(':') && !text.contains('[') {
        return Err(format!(
            "`{text}`: write an IPv6 address in brackets, `[::1]:PORT`"
        ));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return Err(format!("`{text}`: `{host}` is not a host name or address"));
    }
    let port: u64 = port
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: the port `{port}` is not a number"))?;
    let lowest = if allow_zero { 0 } else { 1 };
    if port < lowest || port > 65535 {
        return Err(format!(
            "`{text}`: port {port} out of range ({lowest} to 65535)"
        ));
    }
    Ok((host.to_owned(), port as u16))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_checks_ranges() {
        assert_eq!(host_port("10.0.0.5:5000", false).unwrap().1, 5000);
        assert!(host_port("10.0.0.5:0", false).is_err());
        assert_eq!(host_port("0.0.0.0:0", true).unwrap().1, 0);
        assert!(host_port("h:70000", true)
            .unwrap_err()
            .contains("out of range"));
        assert!(host_port("h", true).is_err());
        assert_eq!(host_port("[::1]:9100", false).unwrap().0, "::1");
        assert!(host_port("::1:9100", false).is_err());
    }
}
