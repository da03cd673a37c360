//! Writes tar archives block by block, with nothing checked: names with
//! `..`, sizes that disagree with the data, PAX records that lie; in GNU
//! headers, base-256 numbers (negative times, large ids) as GNU tar writes them.

/// The tar block size.
pub const BLOCK: usize = 512;

/// Which magic the header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// POSIX `ustar\0` `00`.
    Ustar,
    /// GNU `ustar  \0`: numbers that do not fit in octal (or are negative)
    /// are written in base-256.
    Gnu,
    /// Old v7 tar: no magic at all.
    V7,
}

/// One 512-byte header, field by field.
#[derive(Clone, Debug)]
pub struct Header {
    pub name: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub typeflag: u8,
    pub linkname: Vec<u8>,
    pub devmajor: u32,
    pub devminor: u32,
    pub prefix: Vec<u8>,
    pub magic: Magic,
}

impl Header {
    /// A header with mode 0o644, owner 0:0, mtime 1_600_000_000.
    pub fn new(name: impl AsRef<[u8]>, typeflag: u8, size: u64) -> Self {
        Header {
            name: name.as_ref().to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: 1_600_000_000,
            typeflag,
            linkname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            prefix: Vec::new(),
            magic: Magic::Ustar,
        }
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, mtime: i64) -> Self {
        self.mtime = mtime;
        self
    }

    pub fn link(mut self, target: impl AsRef<[u8]>) -> Self {
        self.linkname = target.as_ref().to_vec();
        self
    }

    pub fn device(mut self, major: u32, minor: u32) -> Self {
        self.devmajor = major;
        self.devminor = minor;
        self
    }

    pub fn magic(mut self, magic: Magic) -> Self {
        self.magic = magic;
        self
    }

    /// Encodes the header, checksum included. Panics if a field does not fit
    /// (in a GNU header, numbers too large for octal are written in base-256).
    pub fn encode(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        let gnu = self.magic == Magic::Gnu;
        bytes(&mut b[0..100], &self.name, "name");
        octal(&mut b[100..108], u64::from(self.mode));
        number(&mut b[108..116], i128::from(self.uid), gnu);
        number(&mut b[116..124], i128::from(self.gid), gnu);
        number(&mut b[124..136], i128::from(self.size), gnu);
        number(&mut b[136..148], i128::from(self.mtime), gnu);
        b[156] = self.typeflag;
        bytes(&mut b[157..257], &self.linkname, "linkname");
        match self.magic {
            Magic::Ustar => {
                b[257..263].copy_from_slice(b"ustar\0");
                b[263..265].copy_from_slice(b"00");
            }
            Magic::Gnu => b[257..265].copy_from_slice(b"ustar  \0"),
            Magic::V7 => {}
        }
        if self.magic != Magic::V7 {
            bytes(&mut b[265..297], b"root", "uname");
            bytes(&mut b[297..329], b"root", "gname");
            octal(&mut b[329..337], u64::from(self.devmajor));
            octal(&mut b[337..345], u64::from(self.devminor));
            bytes(&mut b[345..500], &self.prefix, "prefix");
        }
        set_checksum(&mut b);
        b
    }
}

fn bytes(field: &mut [u8], value: &[u8], what: &str) {
    assert!(
        value.len() <= field.len(),
        "{what} of {} bytes does not fit in {} bytes",
        value.len(),
        field.len()
    );
    field[..value.len()].copy_from_slice(value);
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    assert!(
        text.len() <= digits,
        "{value} does not fit in {digits} octal digits"
    );
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// A numeric field: octal when `value` fits (and is not negative); otherwise,
/// if `base256`, GNU's base-256 (big-endian two's complement, the first byte's
/// top bit set); otherwise a panic.
fn number(field: &mut [u8], value: i128, base256: bool) {
    let digits = field.len() - 1;
    if value >= 0 && format!("{value:o}").len() <= digits {
        octal(field, value as u64);
    } else {
        assert!(
            base256,
            "{value} does not fit in {digits} octal digits (only GNU headers take base-256)"
        );
        let len = field.len();
        let bytes = value.to_be_bytes();
        assert!(len <= bytes.len());
        field.copy_from_slice(&bytes[bytes.len() - len..]);
        field[0] |= 0x80;
    }
}

/// Computes and stores the header checksum (the field counted as spaces).
pub fn set_checksum(block: &mut [u8; BLOCK]) {
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `len` counts itself.
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut out = format!("{len} ").into_bytes();
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    assert_eq!(out.len(), len);
    out
}

/// An archive under construction.
#[derive(Default, Clone)]
pub struct Tar {
    bytes: Vec<u8>,
}

impl Tar {
    pub fn new() -> Self {
        Tar::default()
    }

    /// Appends one header block exactly as given.
    pub fn header(&mut self, h: &Header) -> &mut Self {
        self.bytes.extend_from_slice(&h.encode());
        self
    }

    /// Appends a header block with arbitrary content (checksum fixed up).
    pub fn header_block(&mut self, mut block: [u8; BLOCK]) -> &mut Self {
        set_checksum(&mut block);
        self.bytes.extend_from_slice(&block);
        self
    }

    /// Appends `data` padded with zeros to a whole block.
    pub fn data(&mut self, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.bytes.resize(self.bytes.len() + pad, 0);
        self
    }

    /// Appends bytes with no padding at all.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// Header (its size set to `data.len()`) and data.
    pub fn entry(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.size = data.len() as u64;
        self.header(&h).data(data)
    }

    pub fn file(&mut self, name: impl AsRef<[u8]>, data: &[u8]) -> &mut Self {
        self.entry(Header::new(name, b'0', 0), data)
    }

    pub fn file_mode(&mut self, name: impl AsRef<[u8]>, mode: u32, data: &[u8]) -> &mut Self {
        self.entry(Header::new(name, b'0', 0).mode(mode), data)
    }

    pub fn dir(&mut self, name: impl AsRef<[u8]>, mode: u32) -> &mut Self {
        self.header(&Header::new(name, b'5', 0).mode(mode))
    }

    pub fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
        self.header(&Header::new(name, b'2', 0).mode(0o777).link(target))
    }

    pub fn hardlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Self {
        self.header(&Header::new(name, b'1', 0).link(target))
    }

    pub fn fifo(&mut self, name: impl AsRef<[u8]>, mode: u32) -> &mut Self {
        self.header(&Header::new(name, b'6', 0).mode(mode))
    }

    /// A character (`b'3'`) or block (`b'4'`) device.
    pub fn device(
        &mut self,
        name: impl AsRef<[u8]>,
        typeflag: u8,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        self.header(
            &Header::new(name, typeflag, 0)
                .mode(0o600)
                .device(major, minor),
        )
    }

    /// A PAX extended header (`x`) with these records, for the next entry.
    pub fn pax(&mut self, records: &[(&[u8], &[u8])]) -> &mut Self {
        self.pax_typed(b'x', records)
    }

    /// A PAX global header (`g`).
    pub fn pax_global(&mut self, records: &[(&[u8], &[u8])]) -> &mut Self {
        self.pax_typed(b'g', records)
    }

    fn pax_typed(&mut self, typeflag: u8, records: &[(&[u8], &[u8])]) -> &mut Self {
        let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        self.entry(Header::new("PaxHeaders.0/entry", typeflag, 0), &body)
    }

    /// A GNU long name record (`L`) for the next entry.
    pub fn gnu_long_name(&mut self, name: impl AsRef<[u8]>) -> &mut Self {
        self.gnu_long(b'L', name.as_ref())
    }

    /// A GNU long link-name record (`K`) for the next entry.
    pub fn gnu_long_link(&mut self, target: impl AsRef<[u8]>) -> &mut Self {
        self.gnu_long(b'K', target.as_ref())
    }

    fn gnu_long(&mut self, typeflag: u8, value: &[u8]) -> &mut Self {
        let mut data = value.to_vec();
        data.push(0);
        let h = Header::new("././@LongLink", typeflag, 0).magic(Magic::Gnu);
        self.entry(h, &data)
    }

    /// The bytes so far, without end blocks.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The archive with its two zero end blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out
    }
}
