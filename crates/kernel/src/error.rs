//! Errors: the kernel's errno, verifier logs, and what this crate refuses.

use std::fmt;

use crate::raw::VerifierStats;

/// A kernel error number (positive, as in `errno`).
///
/// Displays as `EINVAL (Invalid argument)`; [`Errno::negated`] gives the
/// `-22` form that differential tests print in `ERR -22` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The value as the kernel returns it from a syscall (`-errno`).
    pub fn negated(self) -> i32 {
        -self.0
    }

    /// Symbolic name (`"EINVAL"`), or `None` for numbers this crate does not name.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::E2BIG => "E2BIG",
            libc::EBADF => "EBADF",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::EINVAL => "EINVAL",
            libc::ENOSPC => "ENOSPC",
            libc::ERANGE => "ERANGE",
            libc::ENOSYS => "ENOSYS",
            libc::ELOOP => "ELOOP",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EOVERFLOW => "EOVERFLOW",
            libc::ENXIO => "ENXIO",
            libc::ESTALE => "ESTALE",
            libc::EBADMSG => "EBADMSG",
            libc::EMSGSIZE => "EMSGSIZE",
            // Kernel-internal, leaks to user space from BPF code paths.
            524 => "ENOTSUPP",
            _ => return None,
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let desc = if self.0 == 524 {
            "operation not supported, kernel-internal errno".to_string()
        } else {
            std::io::Error::from_raw_os_error(self.0).to_string()
        };
        // `io::Error`'s text ends with " (os error N)"; keep only the words.
        let desc = desc.split(" (os error").next().unwrap_or(&desc).to_string();
        match self.name() {
            Some(name) => write!(f, "{name} ({desc})"),
            None => write!(f, "errno {} ({desc})", self.0),
        }
    }
}

/// Everything that can go wrong when asking the kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A `bpf(2)` command failed.
    #[error("{op} failed: {errno}")]
    Syscall {
        /// Which command (e.g. `"BPF_PROG_TEST_RUN"`).
        op: &'static str,
        /// The kernel's answer.
        errno: Errno,
    },
    /// The verifier (or BPF_PROG_LOAD's argument checks) refused a program.
    #[error("the kernel refused program `{program}`: {errno}{}", log_suffix(.log))]
    Refused {
        /// Program name.
        program: String,
        /// The kernel's errno.
        errno: Errno,
        /// The verifier log (may be empty when the kernel wrote none).
        log: String,
        /// Statistics parsed from the log.
        stats: VerifierStats,
    },
    /// The object could not be loaded as a whole (ELF parsing, BTF, map
    /// creation, relocation). `errno` is set when the kernel refused something.
    #[error("loading object {object}: {message}")]
    Object {
        /// Path or label of the object.
        object: String,
        /// What went wrong, including aya's error chain.
        message: String,
        /// The kernel's errno, when a syscall failed.
        errno: Option<Errno>,
    },
    /// The object has no program of that name.
    #[error("no program named `{0}` in the object")]
    NoSuchProgram(String),
    /// The program exists but [`crate::KernelObject::load_program`] was not called (or failed).
    #[error("program `{0}` is not loaded into the kernel")]
    NotLoaded(String),
    /// The object has no map of that name.
    #[error("no map named `{0}` in the object")]
    NoSuchMap(String),
    /// A map operation failed in the kernel.
    #[error("map `{map}`: {op} failed: {errno}")]
    Map {
        /// Map name.
        map: String,
        /// Which command.
        op: &'static str,
        /// The kernel's answer.
        errno: Errno,
    },
    /// Something this crate deliberately does not do, named.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Bad input from the caller, detected before asking the kernel.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A file-system operation (bpffs pin directory, object file) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn log_suffix(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("\nverifier log:\n{}", log.trim_end())
    }
}

impl KernelError {
    /// The kernel's errno behind this error, if the kernel said no.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            KernelError::Syscall { errno, .. }
            | KernelError::Refused { errno, .. }
            | KernelError::Map { errno, .. } => Some(*errno),
            KernelError::Object { errno, .. } => *errno,
            KernelError::Io { source, .. } => source.raw_os_error().map(Errno),
            _ => None,
        }
    }

    /// The verifier log, for [`KernelError::Refused`].
    pub fn verifier_log(&self) -> Option<&str> {
        match self {
            KernelError::Refused { log, .. } => Some(log),
            _ => None,
        }
    }

    pub(crate) fn syscall(op: &'static str) -> impl FnOnce(Errno) -> KernelError {
        move |errno| KernelError::Syscall { op, errno }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_display() {
        assert_eq!(Errno(libc::EINVAL).to_string(), "EINVAL (Invalid argument)");
        assert_eq!(Errno(524).to_string(), "ENOTSUPP (operation not supported, kernel-internal errno)");
        assert_eq!(Errno(libc::EPERM).negated(), -1);
        assert!(Errno(4000).to_string().starts_with("errno 4000"));
    }

    #[test]
    fn refused_display_includes_log() {
        let e = KernelError::Refused {
            program: "p".into(),
            errno: Errno(libc::EACCES),
            log: "R0 !read_ok\n".into(),
            stats: VerifierStats::default(),
        };
        let s = e.to_string();
        assert!(s.contains("EACCES") && s.contains("R0 !read_ok"), "{s}");
        assert_eq!(e.errno(), Some(Errno(libc::EACCES)));
    }
}
