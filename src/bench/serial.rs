//! `serial: {path, baud, parity, data_bits, stop_bits, flow_control}`: a real device on a
//! serial line, opened with the `serialport` crate (line settings, exclusive access) and
//! then driven through tokio's reactor on its descriptor (non-blocking reads and writes).

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use poslab_bench::{FlowControl, Parity, Serial};
use serde_json::json;

use crate::journal::Journal;
use crate::pty::FdStream;

use super::DutError;

/// Opens the serial line as an async byte stream (`AsyncRead + AsyncWrite`). Must run
/// inside a tokio runtime.
pub fn open(link: &str, spec: &Serial, journal: &Journal) -> Result<FdStream, DutError> {
    let port = serialport::new(&spec.path, spec.baud)
        .data_bits(match spec.data_bits {
            5 => serialport::DataBits::Five,
            6 => serialport::DataBits::Six,
            7 => serialport::DataBits::Seven,
            _ => serialport::DataBits::Eight,
        })
        .parity(match spec.parity {
            Parity::None => serialport::Parity::None,
            Parity::Odd => serialport::Parity::Odd,
            Parity::Even => serialport::Parity::Even,
        })
        .stop_bits(match spec.stop_bits {
            2 => serialport::StopBits::Two,
            _ => serialport::StopBits::One,
        })
        .flow_control(match spec.flow_control {
            FlowControl::None => serialport::FlowControl::None,
            FlowControl::Software => serialport::FlowControl::Software,
            FlowControl::Hardware => serialport::FlowControl::Hardware,
        })
        .timeout(Duration::from_millis(100))
        .open_native()
        .map_err(|err| DutError::Serial {
            path: spec.path.clone(),
            err: err.to_string(),
        })?;
    // SAFETY: `into_raw_fd` hands over the open descriptor; nothing else closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(port.into_raw_fd()) };
    let stream = FdStream::new(fd).map_err(|err| DutError::Io {
        what: format!("serial port {}", spec.path),
        err,
    })?;
    journal.record(
        link,
        "serial-open",
        json!({
            "path": spec.path,
            "baud": spec.baud,
            "frame": format!("{}{}{}", spec.data_bits, match spec.parity {
                Parity::None => 'N', Parity::Odd => 'O', Parity::Even => 'E'
            }, spec.stop_bits),
        }),
    );
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pty::Pty;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A pty's slave is a tty like a USB serial adapter: open it with the serial adapter
    /// and talk to it from the master side.
    #[tokio::test]
    async fn a_serial_line_carries_bytes_both_ways() {
        let (mut master, path) = Pty::open().unwrap();
        let spec = Serial::parse_shorthand(&format!("{} @ 115200 8N1", path.display())).unwrap();
        let journal = Journal::in_memory();
        let mut port = open("ecr", &spec, &journal).unwrap();
        port.write_all(b"\x02\x06\x01\x03").await.unwrap();
        let mut got = [0u8; 4];
        master.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x02\x06\x01\x03");
        master.write_all(b"\x80\x00\x00").await.unwrap();
        let mut got = [0u8; 3];
        port.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x80\x00\x00");
        let entry = &journal.entries().unwrap()[0];
        assert_eq!(entry["kind"], "serial-open");
        assert_eq!(entry["frame"], "8N1");
    }

    #[tokio::test]
    async fn a_missing_port_is_an_error_naming_it() {
        let spec = Serial::parse_shorthand("/dev/does-not-exist-poslab @ 9600").unwrap();
        let err = open("ecr", &spec, &Journal::discard()).err().unwrap();
        assert!(
            err.to_string().contains("/dev/does-not-exist-poslab"),
            "{err}"
        );
    }
}
