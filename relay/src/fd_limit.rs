//! The open-file limit: every session holds two sockets, so the relay (and the benchmark that
//! drives it with thousands of connections) raise the soft limit to the hard one at start.

/// Raise the open-file soft limit to the hard limit: every session holds two sockets, and the
/// usual soft limit of 1024 would cap the relay at ~500 consoles.
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return None;
            }
        }
    }
    Some(lim.rlim_cur)
}
