//! User look-ups through NSS: only in the caller's process (NSS may load
//! libraries, which a confined worker must never do).

/// The login name and primary group of `uid` (through NSS, as `newuidmap`
/// looks them up), if any. Only for the caller's process: NSS may load libraries.
pub(crate) fn user_entry(uid: u32) -> Option<(String, u32)> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids);
        // getpwuid_r fills it with pointers into `buf`, which outlives their use.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the sizes given; getpwuid_r is thread-safe.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string in `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some((name.to_string_lossy().into_owned(), pwd.pw_gid));
    }
}
