//! Error numbers returned to callers (the POSIX values, so user programs can use their usual names).

use core::fmt;

/// An error number; user space sees it negated in the syscall return register.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Errno(pub u16);

impl Errno {
    /// Operation not permitted: a policy refused a caller that lacks a privilege.
    pub const EPERM: Self = Self(1);
    /// No such file: e.g. no program of that name in the ramdisk.
    pub const ENOENT: Self = Self(2);
    /// No such process.
    pub const ESRCH: Self = Self(3);
    /// Argument list too long.
    pub const E2BIG: Self = Self(7);
    /// Executable format error.
    pub const ENOEXEC: Self = Self(8);
    /// Bad file descriptor.
    pub const EBADF: Self = Self(9);
    /// No child processes.
    pub const ECHILD: Self = Self(10);
    /// Try again: a bounded resource is momentarily full.
    pub const EAGAIN: Self = Self(11);
    /// Out of memory.
    pub const ENOMEM: Self = Self(12);
    /// Permission denied: the object's access rules refuse this caller.
    pub const EACCES: Self = Self(13);
    /// Bad address: a pointer argument is not valid caller memory.
    pub const EFAULT: Self = Self(14);
    /// Resource busy.
    pub const EBUSY: Self = Self(16);
    /// Already exists.
    pub const EEXIST: Self = Self(17);
    /// Invalid argument.
    pub const EINVAL: Self = Self(22);
    /// Function not implemented: unknown system call.
    pub const ENOSYS: Self = Self(38);

    /// Returns the conventional symbolic name, or `None` for numbers Herald does not use.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::EPERM => "EPERM",
            Self::ENOENT => "ENOENT",
            Self::ESRCH => "ESRCH",
            Self::E2BIG => "E2BIG",
            Self::ENOEXEC => "ENOEXEC",
            Self::EBADF => "EBADF",
            Self::ECHILD => "ECHILD",
            Self::EAGAIN => "EAGAIN",
            Self::ENOMEM => "ENOMEM",
            Self::EACCES => "EACCES",
            Self::EFAULT => "EFAULT",
            Self::EBUSY => "EBUSY",
            Self::EEXIST => "EEXIST",
            Self::EINVAL => "EINVAL",
            Self::ENOSYS => "ENOSYS",
            _ => return None,
        })
    }

    /// Returns the value placed in the syscall return register: `-errno` as two's complement.
    pub fn as_return_value(self) -> u64 {
        (-i64::from(self.0)) as u64
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "errno {}", self.0),
        }
    }
}
