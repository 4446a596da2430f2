//! Pseudo-terminals: poslab holds the master end as an async byte stream and hands the
//! slave's path (`/dev/pts/N`) to a device that expects a serial port (a firmware build,
//! `poslab terminal --ecr /dev/pts/N`, a user's own tool).
//!
//! The slave is put in raw mode (no echo, no line editing, no CR/LF translation, 8 bits),
//! so bytes pass unchanged both ways. poslab keeps a slave descriptor open for the life of
//! the [`Pty`]: when the program on the other end exits or is killed, the master does not
//! see a hang-up (Linux would return EIO), and the same path serves the program once it is
//! started again.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The master end of a pty, as an async byte stream.
pub struct Pty {
    master: FdStream,
    /// Held open so that the master never sees a hang-up between two programs.
    slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    /// Opens a pty pair: the master as an async stream, and the slave's path.
    pub fn open() -> io::Result<(Pty, PathBuf)> {
        // SAFETY: plain libc calls on a descriptor we own; every result is checked.
        let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
        if master < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `master` is a fresh descriptor that nothing else owns.
        let master = unsafe { OwnedFd::from_raw_fd(master) };
        // SAFETY: as above, on a valid master descriptor.
        if unsafe { libc::grantpt(master.as_raw_fd()) } != 0
            || unsafe { libc::unlockpt(master.as_raw_fd()) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let path = slave_path(master.as_raw_fd())?;
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::other("pty path contains a NUL byte"))?;
        // SAFETY: a valid C string; the result is checked.
        let slave = unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        if slave < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let slave = unsafe { OwnedFd::from_raw_fd(slave) };
        make_raw(slave.as_raw_fd())?;
        let pty = Pty {
            master: FdStream::new(master)?,
            slave,
            path: path.clone(),
        };
        Ok((pty, path))
    }

    /// The slave's path (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops whatever is buffered in both directions (a restarted program starts clean).
    pub fn flush_buffers(&self) -> io::Result<()> {
        // SAFETY: tcflush on a descriptor we own.
        if unsafe { libc::tcflush(self.slave.as_raw_fd(), libc::TCIOFLUSH) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn slave_path(master: RawFd) -> io::Result<PathBuf> {
    let mut buf = [0u8; 128];
    // SAFETY: the buffer and its length are valid; the result is checked.
    let rc = unsafe { libc::ptsname_r(master, buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(buf.get(..len).unwrap_or_default())
        .map_err(|_| io::Error::other("pty name is not UTF-8"))?;
    Ok(PathBuf::from(name))
}

/// Raw mode: bytes in, bytes out.
pub(crate) fn make_raw(fd: RawFd) -> io::Result<()> {
    // SAFETY: termios is plain data; tcgetattr fills it and its result is checked.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut termios) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: cfmakeraw only edits the struct.
    unsafe { libc::cfmakeraw(&mut termios) };
    // SAFETY: a valid termios for a valid descriptor.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &termios) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AsyncRead for Pty {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.master).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.master).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.master).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.master).poll_shutdown(cx)
    }
}

/// Any readable and writable descriptor (a pty master, a serial port) as an async stream,
/// through tokio's reactor (`AsyncFd`) and non-blocking `read`/`write`.
pub struct FdStream {
    fd: AsyncFd<OwnedFd>,
}

impl FdStream {
    /// Takes the descriptor and makes it non-blocking. Must run inside a tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<FdStream> {
        set_nonblocking(fd.as_raw_fd())?;
        // SAFETY: the descriptor is owned by the `OwnedFd` that `AsyncFd` keeps, so it stays
        // open for as long as it is registered.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|err| err.into_parts().1)?;
        Ok(FdStream { fd })
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a valid descriptor; results checked.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AsyncRead for FdStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let result = guard.try_io(|inner| {
                // SAFETY: reading into an initialised buffer of the given length.
                let n = unsafe {
                    libc::read(
                        inner.as_raw_fd(),
                        unfilled.as_mut_ptr().cast(),
                        unfilled.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // a pty master whose slave side is closed: end of stream
                Ok(Err(err)) if err.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Ok(()))
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for FdStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let result = guard.try_io(|inner| {
                // SAFETY: writing from a valid buffer of the given length.
                let n = unsafe { libc::write(inner.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_pass_unchanged_both_ways() {
        let (mut pty, path) = Pty::open().unwrap();
        assert!(path.starts_with("/dev/pts"), "{}", path.display());
        let mut slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // every byte value, including CR, LF, ^C and ^D, crosses untouched
        let all: Vec<u8> = (0..=255u8).collect();
        pty.write_all(&all).await.unwrap();
        let mut got = vec![0u8; all.len()];
        let reader = tokio::task::spawn_blocking(move || {
            slave.read_exact(&mut got).unwrap();
            slave.write_all(b"\r\n\x03back").unwrap();
            got
        });
        assert_eq!(reader.await.unwrap(), all);
        let mut back = [0u8; 7];
        pty.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"\r\n\x03back");
    }

    #[tokio::test]
    async fn the_master_outlives_the_program_on_the_slave() {
        let (mut pty, path) = Pty::open().unwrap();
        for round in 0..2u8 {
            let mut slave = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            slave.write_all(&[round]).unwrap();
            drop(slave);
            let mut b = [0u8; 1];
            pty.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], round);
        }
    }
}
