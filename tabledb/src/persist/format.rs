//! Byte layouts of the files in a data directory. All integers are little-endian; the layouts
//! are documented in `docs/format.md`.

use std::fmt;

/// Format version of checkpoint files and log segments.
pub const FORMAT_VERSION: u32 = 1;

pub const CHECKPOINT_MAGIC: [u8; 8] = *b"TDBCKPT\0";
pub const CHECKPOINT_HEADER_LEN: usize = 80;

pub const SEGMENT_MAGIC: [u8; 8] = *b"TDBWAL\0\0";
pub const SEGMENT_HEADER_LEN: usize = 32;
/// The log segment version written. Version 1 segments (still read) start at their first
/// entry's sequence number; version 2 segments at one past the last one logged before them,
/// so that a missing segment shows as a gap.
pub const SEGMENT_VERSION: u32 = 2;

/// A log frame: payload length and CRC32, then the payload.
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest log frame payload; a length above it is corruption, not a big commit.
pub const FRAME_MAX_LEN: usize = 1 << 30;

/// The highest sequence number, checkpoint generation and relation id a data directory may
/// hold. Each grows by one per change, so no real database comes near it; a larger value is
/// damage, refused at open so that the next change can always be numbered.
pub const MAX_SEQ: u64 = u64::MAX / 2;

/// The highest record id a data directory may hold, so that one past it (a table's next id)
/// still fits a `u64`.
pub const MAX_RECORD_ID: u64 = u64::MAX - 1;

pub const OP_PUT: u8 = 1;
pub const OP_DELETE: u8 = 2;

/// A commit payload's header: sequence number and operation count.
pub const COMMIT_HEADER_LEN: usize = 12;
/// Bytes of a put operation before its record: kind, table, id, length.
pub const PUT_HEADER_LEN: usize = 17;
/// Bytes of a delete operation: kind, table, id.
pub const DELETE_LEN: usize = 13;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header of a checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointHeader {
    pub table_id: u32,
    pub record_size: u64,
    pub record_count: u64,
    pub id_runs: u64,
    pub next_id: u64,
    pub seq: u64,
    pub body_crc: u32,
}

impl CheckpointHeader {
    pub fn encode(&self) -> [u8; CHECKPOINT_HEADER_LEN] {
        let mut b = [0u8; CHECKPOINT_HEADER_LEN];
        b[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(CHECKPOINT_HEADER_LEN as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.table_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.record_size.to_le_bytes());
        b[32..40].copy_from_slice(&self.record_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.id_runs.to_le_bytes());
        b[48..56].copy_from_slice(&self.next_id.to_le_bytes());
        b[56..64].copy_from_slice(&self.seq.to_le_bytes());
        b[64..68].copy_from_slice(&self.body_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&b[0..68]);
        b[68..72].copy_from_slice(&header_crc.to_le_bytes());
        b
    }

    /// Parses and checks a header: magic, version, header checksum.
    pub fn decode(b: &[u8]) -> Result<CheckpointHeader, String> {
        if b.len() < CHECKPOINT_HEADER_LEN {
            return Err(format!(
                "file of {} bytes is shorter than the {CHECKPOINT_HEADER_LEN}-byte header",
                b.len()
            ));
        }
        if b[0..8] != CHECKPOINT_MAGIC {
            return Err("not a tabledb checkpoint (bad magic at offset 0)".into());
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(format!(
                "format version {version} at offset 8; this build reads version {FORMAT_VERSION}"
            ));
        }
        let header_crc = u32_at(b, 68);
        if crc32fast::hash(&b[0..68]) != header_crc {
            return Err("header checksum mismatch at offset 68".into());
        }
        if u32_at(b, 12) as usize != CHECKPOINT_HEADER_LEN {
            return Err(format!(
                "header length {} at offset 12, expected {CHECKPOINT_HEADER_LEN}",
                u32_at(b, 12)
            ));
        }
        Ok(CheckpointHeader {
            table_id: u32_at(b, 16),
            record_size: u64_at(b, 24),
            record_count: u64_at(b, 32),
            id_runs: u64_at(b, 40),
            next_id: u64_at(b, 48),
            seq: u64_at(b, 56),
            body_crc: u32_at(b, 64),
        })
    }

    /// The size the whole file must have.
    pub fn file_len(&self) -> Option<u64> {
        self.record_count
            .checked_mul(self.record_size)?
            .checked_add(self.id_runs.checked_mul(16)?)?
            .checked_add(CHECKPOINT_HEADER_LEN as u64)
    }
}

/// The header of a log segment whose entries follow sequence number `first_seq - 1`.
pub fn encode_segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    b[0..8].copy_from_slice(&SEGMENT_MAGIC);
    b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32fast::hash(&b[0..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Checks a segment header and returns its version and first sequence number.
pub fn decode_segment_header(b: &[u8]) -> Result<(u32, u64), String> {
    if b.len() < SEGMENT_HEADER_LEN {
        return Err(format!(
            "file of {} bytes is shorter than the {SEGMENT_HEADER_LEN}-byte header",
            b.len()
        ));
    }
    if b[0..8] != SEGMENT_MAGIC {
        return Err("not a tabledb log segment (bad magic at offset 0)".into());
    }
    let version = u32_at(b, 8);
    if !(1..=SEGMENT_VERSION).contains(&version) {
        return Err(format!(
            "format version {version} at offset 8; this build reads versions 1 to {SEGMENT_VERSION}"
        ));
    }
    if crc32fast::hash(&b[0..24]) != u32_at(b, 24) {
        return Err("header checksum mismatch at offset 24".into());
    }
    Ok((version, u64_at(b, 16)))
}

/// Appends a frame holding `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What reading one frame found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame with a good checksum, and the offset just after it.
    Good(&'a [u8], usize),
    /// No bytes left.
    End,
    /// A frame cut short by the end of the file.
    Incomplete,
    /// A whole frame whose checksum or length is wrong; `next` is where it would end.
    Bad { next: Option<usize>, reason: &'static str },
}

/// Reads the frame at `at`.
pub fn read_frame(b: &[u8], at: usize) -> Frame<'_> {
    if at == b.len() {
        return Frame::End;
    }
    if b.len() - at < FRAME_HEADER_LEN {
        return Frame::Incomplete;
    }
    let len = u32_at(b, at) as usize;
    let crc = u32_at(b, at + 4);
    if len > FRAME_MAX_LEN {
        return Frame::Bad { next: None, reason: "frame length out of range" };
    }
    let start = at + FRAME_HEADER_LEN;
    if b.len() - start < len {
        return Frame::Incomplete;
    }
    let payload = &b[start..start + len];
    if crc32fast::hash(payload) != crc {
        return Frame::Bad { next: Some(start + len), reason: "checksum mismatch" };
    }
    Frame::Good(payload, start + len)
}

/// One change in a logged commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Put { table: u32, id: u64, bytes: &'a [u8] },
    Delete { table: u32, id: u64 },
}

/// Encodes a commit payload: its sequence number and changes.
pub struct CommitEncoder<'a> {
    out: &'a mut Vec<u8>,
    count_at: usize,
    count: u32,
}

impl<'a> CommitEncoder<'a> {
    pub fn new(out: &'a mut Vec<u8>, seq: u64) -> Self {
        out.extend_from_slice(&seq.to_le_bytes());
        let count_at = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        CommitEncoder { out, count_at, count: 0 }
    }

    pub fn put(&mut self, table: u32, id: u64, bytes: &[u8]) {
        self.out.push(OP_PUT);
        self.out.extend_from_slice(&table.to_le_bytes());
        self.out.extend_from_slice(&id.to_le_bytes());
        self.out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.out.extend_from_slice(bytes);
        self.count += 1;
    }

    pub fn delete(&mut self, table: u32, id: u64) {
        self.out.push(OP_DELETE);
        self.out.extend_from_slice(&table.to_le_bytes());
        self.out.extend_from_slice(&id.to_le_bytes());
        self.count += 1;
    }

    pub fn finish(self) {
        self.out[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_le_bytes());
    }
}

/// Whether `p`, the start of a commit payload of `declared` bytes that the end of the file cut
/// short, is well-formed as far as it goes: a commit header whose sequence number follows
/// `last_seq`, then operations with known kinds and lengths inside the declared payload, the
/// last of them possibly cut short, and nothing after the last one. A write torn by a crash
/// leaves exactly that; a frame whose length was damaged does not (the next frame's header
/// shows up where an operation should be).
pub fn is_torn_commit(p: &[u8], declared: usize, last_seq: u64) -> bool {
    if p.len() < COMMIT_HEADER_LEN {
        return true;
    }
    let count = u32_at(p, 8) as usize;
    if u64_at(p, 0) <= last_seq || count == 0 {
        return false;
    }
    let (mut at, mut done) = (COMMIT_HEADER_LEN, 0);
    while at < p.len() {
        if done == count {
            return false;
        }
        let rest = p.len() - at;
        let header = match p[at] {
            OP_PUT => PUT_HEADER_LEN,
            OP_DELETE => DELETE_LEN,
            _ => return false,
        };
        if rest >= 13 && u64_at(p, at + 5) == 0 {
            return false;
        }
        if rest < header {
            return true;
        }
        let len = if p[at] == OP_PUT { u32_at(p, at + 13) as usize } else { 0 };
        at = match at.checked_add(header).and_then(|a| a.checked_add(len)) {
            Some(next) if next <= declared && (p[at] == OP_DELETE || len > 0) => next,
            _ => return false,
        };
        done += 1;
    }
    true
}

/// A malformed commit payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError(pub String);

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes a commit payload: its sequence number and changes.
pub fn decode_commit(p: &[u8]) -> Result<(u64, Vec<Op<'_>>), PayloadError> {
    let err = |what: &str| PayloadError(format!("malformed commit: {what}"));
    if p.len() < 12 {
        return Err(err("shorter than its header"));
    }
    let seq = u64_at(p, 0);
    let count = u32_at(p, 8) as usize;
    let mut ops = Vec::with_capacity(count.min(p.len() / 13));
    let mut at = 12;
    for _ in 0..count {
        if p.len() - at < 13 {
            return Err(err("operation cut short"));
        }
        let kind = p[at];
        let table = u32_at(p, at + 1);
        let id = u64_at(p, at + 5);
        at += 13;
        match kind {
            OP_PUT => {
                if p.len() - at < 4 {
                    return Err(err("record length cut short"));
                }
                let len = u32_at(p, at) as usize;
                at += 4;
                if p.len() - at < len {
                    return Err(err("record bytes cut short"));
                }
                ops.push(Op::Put { table, id, bytes: &p[at..at + len] });
                at += len;
            }
            OP_DELETE => ops.push(Op::Delete { table, id }),
            _ => return Err(err("unknown operation kind")),
        }
    }
    if at != p.len() {
        return Err(err("trailing bytes"));
    }
    Ok((seq, ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_headers_of_both_versions_are_read() {
        assert_eq!(decode_segment_header(&encode_segment_header(42)), Ok((SEGMENT_VERSION, 42)));
        // A version 1 header (written by earlier builds) differs only in its version.
        let mut v1 = encode_segment_header(42);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&v1[0..24]);
        v1[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_segment_header(&v1), Ok((1, 42)));
        let mut v3 = v1;
        v3[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32fast::hash(&v3[0..24]);
        v3[24..28].copy_from_slice(&crc.to_le_bytes());
        assert!(decode_segment_header(&v3).unwrap_err().contains("version 3"));
    }

    #[test]
    fn commits_round_trip() {
        let mut payload = Vec::new();
        let mut e = CommitEncoder::new(&mut payload, 42);
        e.put(3, 7, b"abcd");
        e.delete(3, 8);
        e.finish();
        let (seq, ops) = decode_commit(&payload).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(ops, vec![Op::Put { table: 3, id: 7, bytes: b"abcd" }, Op::Delete { table: 3, id: 8 }]);
        let mut framed = Vec::new();
        encode_frame(&payload, &mut framed);
        assert_eq!(read_frame(&framed, 0), Frame::Good(&payload[..], framed.len()));
        assert_eq!(read_frame(&framed[..framed.len() - 1], 0), Frame::Incomplete);
        framed[10] ^= 1;
        assert!(matches!(read_frame(&framed, 0), Frame::Bad { .. }));
    }

    #[test]
    fn checkpoint_headers_round_trip_and_detect_flips() {
        let h = CheckpointHeader {
            table_id: 2,
            record_size: 64,
            record_count: 10,
            id_runs: 1,
            next_id: 11,
            seq: 99,
            body_crc: 7,
        };
        let mut b = h.encode();
        assert_eq!(CheckpointHeader::decode(&b).unwrap(), h);
        assert_eq!(h.file_len(), Some(80 + 640 + 16));
        b[30] ^= 4;
        assert!(CheckpointHeader::decode(&b).is_err());
    }
}
