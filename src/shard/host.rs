//! The few operating-system facts the load generator needs beyond std and mio: the file
//! descriptor limit, a precise timer for the open-loop schedule, the monotonic clock it is
//! set against, and another process's CPU time and resident memory from `/proc`.
//!
//! It lives under `src/shard/`, the one place `unsafe` is allowed, beside the shards' own
//! system-call wrappers (`sys`); each block carries its `// SAFETY:` note. The calls run at
//! start-up or once per timer tick, never per message.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (and, as root, the hard limit to
/// `fs.nr_open`), returning the soft limit now in force.
pub(crate) fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: passes a pointer to a live rlimit, which getrlimit fills.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(lim.rlim_max);
    let wanted = libc::rlimit {
        rlim_cur: nr_open.max(lim.rlim_max),
        rlim_max: nr_open.max(lim.rlim_max),
    };
    // SAFETY: passes a pointer to a live rlimit; raising the hard limit fails without
    // CAP_SYS_RESOURCE, which is handled by the fallback below.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        return wanted.rlim_cur;
    }
    let soft = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above; the soft limit may always rise to the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
        soft.rlim_cur
    } else {
        lim.rlim_cur
    }
}

/// Clock ticks per second, the unit of `utime` and `stime` in `/proc/<pid>/stat`.
pub(crate) fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Nanoseconds on `CLOCK_MONOTONIC`, the clock the timer below is armed against.
pub(crate) fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: passes a pointer to a live timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A non-blocking `CLOCK_MONOTONIC` timerfd armed at absolute deadlines. Epoll timeouts are
/// whole milliseconds; an open-loop schedule at tens of thousands of messages per second needs
/// microseconds, or every message would be measured late by up to a millisecond.
#[derive(Debug)]
pub(crate) struct Timer {
    fd: OwnedFd,
}

impl Timer {
    /// Creates a disarmed timer.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create takes no pointers; a negative return is an error.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by timerfd_create and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd })
    }

    /// Arms the timer to fire once at `deadline_ns` on [`mono_ns`]'s clock (a deadline in
    /// the past fires at once).
    pub(crate) fn arm_at(&self, deadline_ns: u64) {
        let deadline_ns = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: passes a pointer to a live itimerspec and a null old-value pointer, which
        // timerfd_settime allows; the fd is valid while `self` lives.
        unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
    }

    /// Consumes the expiry count so that the next expiry makes the fd readable again.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 8];
        // EAGAIN (nothing expired) is the expected outcome when woken for another reason.
        let _ = crate::shard::sys::read_fd(self.fd.as_raw_fd(), &mut buf);
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// CPU time (user + system) of this process in microseconds.
pub(crate) fn own_cpu_us() -> u64 {
    crate::shard::sys::process_cpu_us()
}

/// CPU time (user + system, fields 14 and 15 of `/proc/<pid>/stat`) of another process in
/// microseconds, or `None` when the process is gone.
pub(crate) fn proc_cpu_us(pid: u32, ticks_per_s: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state); utime is field 14, so skip 11 fields.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / ticks_per_s.max(1))
}

/// Resident set size (`VmRSS` of `/proc/<pid>/status`) in KiB.
pub(crate) fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures_read_back() {
        let pid = std::process::id();
        assert!(proc_rss_kib(pid).unwrap() > 0);
        let ticks = clock_ticks_per_s();
        assert!(proc_cpu_us(pid, ticks).is_some());
        let a = mono_ns();
        assert!(mono_ns() >= a);
    }
}
