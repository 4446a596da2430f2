//! `power: {off, on}`: shell commands that switch a real node's power (a USB relay, a PDU),
//! each run with a time limit and journalled.

use std::process::Stdio;
use std::time::Duration;

use poslab_bench::Power;
use poslab_sensitive::mask_digit_runs;
use serde_json::json;

use crate::journal::Journal;

use super::DutError;

/// A real node's power switch.
pub struct PowerHooks {
    node: String,
    spec: Power,
    journal: Journal,
}

impl PowerHooks {
    pub fn new(node: &str, spec: &Power, journal: Journal) -> PowerHooks {
        PowerHooks {
            node: node.to_owned(),
            spec: spec.clone(),
            journal,
        }
    }

    pub async fn off(&self) -> Result<(), DutError> {
        self.run("power-off", &self.spec.off).await
    }

    pub async fn on(&self) -> Result<(), DutError> {
        self.run("power-on", &self.spec.on).await
    }

    /// Off, `settle`, on: a power loss.
    pub async fn cycle(&self) -> Result<(), DutError> {
        self.off().await?;
        tokio::time::sleep(self.spec.settle.get()).await;
        self.on().await
    }

    async fn run(&self, kind: &str, command: &str) -> Result<(), DutError> {
        let result = run_hook(command, self.spec.timeout.get()).await;
        self.journal.record(
            &self.node,
            kind,
            match &result {
                Ok(()) => json!({"command": mask_digit_runs(command), "ok": true}),
                Err(err) => {
                    json!({"command": mask_digit_runs(command), "ok": false, "error": err.to_string()})
                }
            },
        );
        result
    }
}

/// Runs `command` with `sh -c` in its own process group; a non-zero exit or the time limit
/// is an error carrying the end of its output (digit runs masked).
pub async fn run_hook(command: &str, limit: Duration) -> Result<(), DutError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| DutError::Io {
            what: format!("power hook `{}`", mask_digit_runs(command)),
            err,
        })?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    let stderr = child.stderr.take();
    let stdout = child.stdout.take();
    let collect = async move {
        use tokio::io::AsyncReadExt;
        let mut text = Vec::new();
        if let Some(mut err) = stderr {
            let _ = err.read_to_end(&mut text).await;
        }
        if let Some(mut out) = stdout {
            let _ = out.read_to_end(&mut text).await;
        }
        text
    };
    let wait = async {
        let (status, text) = tokio::join!(child.wait(), collect);
        (status, text)
    };
    match tokio::time::timeout(limit, wait).await {
        Ok((Ok(status), text)) if status.success() => {
            let _ = text;
            Ok(())
        }
        Ok((Ok(status), text)) => {
            let text = String::from_utf8_lossy(&text);
            let tail: String = text
                .trim()
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(DutError::Hook {
                command: mask_digit_runs(command),
                problem: format!("{status}: {}", mask_digit_runs(&tail)),
            })
        }
        Ok((Err(err), _)) => Err(DutError::Io {
            what: format!("power hook `{}`", mask_digit_runs(command)),
            err,
        }),
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: the hook's own process group (process_group(0) above).
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            Err(DutError::Hook {
                command: mask_digit_runs(command),
                problem: format!("no answer within {}", humantime::format_duration(limit)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hooks_run_with_a_time_limit_and_report_failures() {
        run_hook("true", Duration::from_secs(10)).await.unwrap();
        let err = run_hook(
            "echo relay 4111111111111111 stuck >&2; exit 3",
            Duration::from_secs(10),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("relay"), "{err}");
        assert!(!err.contains("4111111111111111"), "{err}");
        let err = run_hook("sleep 30", Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no answer within 200ms"), "{err}");
    }

    #[tokio::test]
    async fn a_power_cycle_runs_off_then_on_and_is_journalled() {
        let dir = std::env::temp_dir().join(format!("poslab-power-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("relay.log");
        let spec = Power {
            off: format!("echo off >> {}", log.display()),
            on: format!("echo on >> {}", log.display()),
            timeout: poslab_bench::HumanDuration(Duration::from_secs(10)),
            settle: poslab_bench::HumanDuration(Duration::from_millis(10)),
        };
        let journal = Journal::in_memory();
        let hooks = PowerHooks::new("terminal", &spec, journal.clone());
        hooks.cycle().await.unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "off\non\n");
        let kinds: Vec<String> = journal
            .entries()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["power-off", "power-on"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
