//! The archive's limits ([`Limits`]), counted as entries come. Each check
//! names the [`Limit`] it hits; the archive loop turns it into the job's
//! error, with the entry's name. A new limit is a field of `Limits`, a
//! variant of `Limit`, and a check here called from the loop.

use crate::options::{Limit, Limits};
use crate::worker::names;

/// What the archive used so far, against its limits.
pub(super) struct Counter<'a> {
    limits: &'a Limits,
    entries: u64,
    /// Data bytes so far (a sparse file's data, not its holes).
    total: u64,
    /// The sum of every entry's data size (as stored).
    pub layer_size: u64,
    /// Sparse files' apparent sizes so far, holes included.
    sparse: u64,
}

impl<'a> Counter<'a> {
    pub(super) fn new(limits: &'a Limits) -> Self {
        Counter {
            limits,
            entries: 0,
            total: 0,
            layer_size: 0,
            sparse: 0,
        }
    }

    /// The value of `limit` (for the error that names it).
    pub(super) fn value(&self, limit: Limit) -> u64 {
        self.limits.get(limit)
    }

    /// Bytes of extension headers one entry may have (less the first one's
    /// header block), a PAX global header too.
    pub(super) fn extension_budget(&self) -> u64 {
        self.limits.max_extension_size
    }

    /// One more entry: `extensions` bytes of extension headers, `size` bytes
    /// of data, `stored` of them in the archive (less for an old-GNU sparse
    /// file: `size` is its apparent size, holes included).
    pub(super) fn entry(&mut self, extensions: u64, size: u64, stored: u64) -> Result<(), Limit> {
        let limits = self.limits;
        if extensions > limits.max_extension_size {
            return Err(Limit::MaxExtensionSize);
        }
        self.entries += 1;
        if self.entries > limits.max_entries {
            return Err(Limit::MaxEntries);
        }
        self.layer_size = self.layer_size.saturating_add(size);
        if stored > limits.max_entry_size {
            return Err(Limit::MaxEntrySize);
        }
        self.total = self.total.saturating_add(stored);
        if self.total > limits.max_total_size {
            return Err(Limit::MaxTotalSize);
        }
        Ok(())
    }

    /// A PAX global header of `size` bytes (read whole into memory).
    pub(super) fn global_header(&self, size: u64) -> Result<(), Limit> {
        if size > self.limits.max_extension_size {
            return Err(Limit::MaxExtensionSize);
        }
        Ok(())
    }

    /// A sparse file of `apparent` bytes, holes included (its data was
    /// counted with the entry).
    pub(super) fn sparse(&mut self, apparent: u64) -> Result<(), Limit> {
        self.sparse = self.sparse.saturating_add(apparent);
        match self.sparse > self.limits.max_sparse_size {
            true => Err(Limit::MaxSparseSize),
            false => Ok(()),
        }
    }

    /// The name as it will be used, however long (a name refused by the
    /// lexical policy is the applier's to reject).
    pub(super) fn name(&self, raw: &[u8]) -> Result<(), Limit> {
        if let Ok(path) = names::normalize_lexically(raw) {
            if path.len() as u64 > self.limits.max_path_length {
                return Err(Limit::MaxPathLength);
            }
            let depth = path.split(|b| *b == b'/').count() as u64;
            if depth > self.limits.max_path_depth {
                return Err(Limit::MaxPathDepth);
            }
        }
        Ok(())
    }
}
