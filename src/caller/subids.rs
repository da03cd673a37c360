//! Subordinate ids: the ranges `/etc/subuid` and `/etc/subgid` grant a user, and
//! the `newuidmap`/`newgidmap` helpers that write them into the zygote's user
//! namespace.
//!
//! A process cannot map ids other than its own into a user namespace; the two
//! setuid helpers from the `shadow` suite (Debian's `uidmap` package) may, within
//! the ranges those files list for the user. They must act from outside the
//! namespace, so the driver runs them on the zygote's pid while the zygote waits.
//!
//! The namespace maps id 0 to the caller (as the single-id mode does) and ids
//! `1..` to the subordinate ranges, one after another.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sys;
use crate::wire::IdMapping;

/// The most ranges of one kind put in a map: the kernel takes 340 lines, and a
/// user with more than a few ranges is unusual.
const MAX_RANGES: usize = 64;

/// Whether a sandbox started by an unprivileged user maps subordinate ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubordinateIds {
    /// Map only the caller's own uid and gid (to 0): every file belongs to the
    /// caller. Nothing outside the namespace is needed.
    #[default]
    Never,
    /// Map the caller's subordinate ids when `newuidmap`, `newgidmap` and ranges
    /// for the caller in both files exist; otherwise as [`SubordinateIds::Never`].
    /// [`Sandbox::mode`](crate::Sandbox::mode) tells which one was used.
    IfAvailable,
    /// Map the caller's subordinate ids, or fail to start with
    /// [`Error::ConfinementUnavailable`](crate::Error::ConfinementUnavailable)
    /// saying what is missing.
    Required,
}

/// One range of a `/etc/subuid`-style file: `count` ids from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u32,
    count: u32,
}

/// What the driver will run: the helpers and the ranges for each kind.
#[derive(Debug)]
pub(crate) struct Plan {
    newuidmap: PathBuf,
    newgidmap: PathBuf,
    uid: u32,
    gid: u32,
    uids: Vec<Range>,
    gids: Vec<Range>,
}

/// Finds what mapping the caller's subordinate ids needs, or says what is missing.
pub(crate) fn plan(uid: u32, gid: u32) -> Result<Plan, String> {
    let newuidmap = find_program("newuidmap")?;
    let newgidmap = find_program("newgidmap")?;
    // The helpers refuse a caller without a login name, and map the caller's
    // own gid only when it is the primary group of that entry.
    let (name, primary_gid) = sys::user_entry(uid)
        .ok_or_else(|| format!("uid {uid} has no login name (newuidmap needs one)"))?;
    if gid != primary_gid {
        return Err(format!(
            "the process's gid {gid} is not {name}'s primary group {primary_gid} \
             (newgidmap maps only that one)"
        ));
    }
    let ranges = |file: &str| -> Result<Vec<Range>, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}"))?;
        let ranges = ranges_for(&text, Some(&name), uid);
        if ranges.is_empty() {
            return Err(format!("{file} lists no subordinate ids for {name}"));
        }
        Ok(ranges)
    };
    Ok(Plan {
        newuidmap,
        newgidmap,
        uid,
        gid,
        uids: ranges("/etc/subuid")?,
        gids: ranges("/etc/subgid")?,
    })
}

impl Plan {
    /// Runs `newuidmap` and `newgidmap` on the process `pid`, which has entered a
    /// new user namespace and waits. Blocks until both have exited.
    pub(crate) fn write(&self, pid: u32) -> Result<IdMapping, String> {
        let uids = run_helper(&self.newuidmap, pid, self.uid, &self.uids)?;
        let gids = run_helper(&self.newgidmap, pid, self.gid, &self.gids)?;
        Ok(IdMapping::Written { uids, gids })
    }
}

/// Runs one helper with the map `0 own 1`, then the ranges from id 1 on; returns
/// how many ids the map covers.
fn run_helper(program: &Path, pid: u32, own: u32, ranges: &[Range]) -> Result<u32, String> {
    let (args, count) = map_arguments(own, ranges);
    let output = Command::new(program)
        .arg(pid.to_string())
        .args(&args)
        .output()
        .map_err(|e| format!("running {}: {e}", program.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{} {pid} {} failed ({}): {}",
            program.display(),
            args.join(" "),
            output.status,
            stderr.trim()
        ));
    }
    Ok(count)
}

/// The `inside outside count` triples for a helper, and the number of ids mapped.
fn map_arguments(own: u32, ranges: &[Range]) -> (Vec<String>, u32) {
    let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
    let mut next: u32 = 1;
    // The kernel refuses a map whose outside ranges overlap: skip a range listed
    // twice (or overlapping one already taken) and one holding the caller's own id.
    let mut taken = vec![Range {
        start: own,
        count: 1,
    }];
    let overlaps = |a: &Range, b: &Range| {
        u64::from(a.start) < u64::from(b.start) + u64::from(b.count)
            && u64::from(b.start) < u64::from(a.start) + u64::from(a.count)
    };
    let distinct: Vec<Range> = ranges
        .iter()
        .filter(|r| {
            let fresh = !taken.iter().any(|t| overlaps(r, t));
            if fresh {
                taken.push(**r);
            }
            fresh
        })
        .copied()
        .collect();
    for range in distinct.iter().take(MAX_RANGES) {
        // Inside ids must stay below u32::MAX (the kernel's "invalid id").
        let room = u32::MAX - 1 - next;
        let count = range.count.min(room);
        if count == 0 {
            break;
        }
        args.extend([next.to_string(), range.start.to_string(), count.to_string()]);
        next += count;
    }
    (args, next)
}

/// The ranges a `/etc/subuid`-style text grants to the user `name` (or `uid`, as
/// a number), in the order listed. Malformed lines are skipped, as shadow does.
fn ranges_for(text: &str, name: Option<&str>, uid: u32) -> Vec<Range> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            let start = fields.next()?.parse::<u32>().ok()?;
            let count = fields.next()?.parse::<u32>().ok()?;
            let ours = Some(owner) == name || owner == uid;
            (ours && count > 0 && fields.next().is_none()).then_some(Range { start, count })
        })
        .collect()
}

/// The absolute path of `program`, from `PATH` or the usual system directories.
fn find_program(program: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "{program} not found (install the uidmap package, or shadow's newuidmap/newgidmap)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u32, count: u32) -> Range {
        Range { start, count }
    }

    #[test]
    fn ranges_by_name_and_by_number_in_order() {
        let text = "alice:100000:65536\nbob:165536:65536\n1000:300000:10\n\
                    alice:400000:5\n# comment\nalice:bad:1\nalice:1:0\nalice:1:2:3\n";
        assert_eq!(
            ranges_for(text, Some("alice"), 1000),
            vec![
                range(100_000, 65_536),
                range(300_000, 10),
                range(400_000, 5),
            ]
        );
        assert_eq!(
            ranges_for(text, None, 1001),
            Vec::<Range>::new(),
            "an unknown user gets nothing"
        );
        assert_eq!(ranges_for(text, Some("bob"), 7).len(), 1);
    }

    #[test]
    fn map_arguments_follow_each_other_from_one() {
        let ranges = [range(100_000, 65_536), range(300_000, 10)];
        let (args, count) = map_arguments(1000, &ranges);
        assert_eq!(args.join(" "), "0 1000 1 1 100000 65536 65537 300000 10");
        assert_eq!(count, 65_547);
    }

    #[test]
    fn map_arguments_skip_repeated_overlapping_and_own_ranges() {
        let ranges = [
            range(100_000, 65_536),
            range(100_000, 65_536),
            range(150_000, 100),
            range(999, 10),
            range(300_000, 10),
        ];
        let (args, count) = map_arguments(1000, &ranges);
        assert_eq!(args.join(" "), "0 1000 1 1 100000 65536 65537 300000 10");
        assert_eq!(count, 65_547);
    }

    #[test]
    fn map_arguments_stay_below_the_invalid_id() {
        let ranges = [range(4, u32::MAX - 4), range(0, 3)];
        let (args, count) = map_arguments(3, &ranges);
        assert_eq!(count, u32::MAX - 1, "{args:?}");
        // The second range is cut to the two ids left below u32::MAX - 1.
        assert_eq!(args.len(), 9, "{args:?}");
        assert_eq!(args[8], "2");
    }

    #[test]
    fn missing_program_names_the_package() {
        let err = find_program("sandtar-no-such-helper").unwrap_err();
        assert!(err.contains("uidmap"), "{err}");
    }
}
