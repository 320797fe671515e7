//! The write-ahead log: committed transactions, appended as CRC32-framed entries to segment
//! files and made durable by one fsync per group of commits.
//!
//! Committers append encoded commits to an in-memory buffer under the commit lock (cheap, in
//! commit order). [`Wal::sync`] writes everything buffered and fsyncs once: whoever calls it
//! covers every commit appended before it started (group commit). A write that fails (a full
//! disk) keeps its bytes for the next attempt and cuts the file back to its last good length;
//! an fsync that fails stops all writes, because the kernel may have dropped the data and a
//! retry could report success for bytes that never reach the disk.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::format::{
    COMMIT_HEADER_LEN, DELETE_LEN, FRAME_HEADER_LEN, FRAME_MAX_LEN, Frame, Op, SEGMENT_HEADER_LEN,
    decode_commit, decode_segment_header, encode_frame, encode_segment_header, is_torn_commit, read_frame,
};
use super::vfs::{Storage, WriteFile};
use super::{PersistError, Stop};

#[derive(Debug, Clone)]
struct Segment {
    first_seq: u64,
    name: String,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    first_seq: u64,
    last_seq: u64,
}

struct Output {
    file: Option<Box<dyn WriteFile>>,
    segments: Vec<Segment>,
    /// Bytes of the open segment known to be written.
    len: u64,
    /// Bytes taken from the buffer whose write failed, to write first next time.
    retry: Pending,
    /// Start a new segment at the next write (so the current one can be removed once a
    /// checkpoint covers it).
    roll: bool,
}

/// The log of one database.
pub(crate) struct Wal {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    segment_max: u64,
    pending_max: usize,
    pending: Mutex<Pending>,
    output: Mutex<Output>,
    durable: AtomicU64,
    /// Bytes appended but not yet written (buffered, or kept after a failed write).
    unwritten: AtomicUsize,
    /// Bytes written since the last checkpoint began.
    written_since_checkpoint: AtomicU64,
    stop: Arc<Stop>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

/// What replaying the log found.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub segments: usize,
    pub entries: u64,
    pub bytes: u64,
    pub last_seq: u64,
    /// A partly written entry at the end of the log, cut off: file and offset.
    pub torn_tail: Option<(String, u64)>,
    /// With salvage: where corruption was found and everything after it dropped.
    pub salvaged_at: Option<(String, u64, String)>,
}

/// How [`Wal::open`] opens a log.
pub struct WalOptions {
    /// Bytes after which a segment is closed and a new one begun.
    pub segment_max: u64,
    /// Bytes of commits waiting to be written, at most.
    pub pending_max: usize,
    /// Cut the log at damage instead of refusing it.
    pub salvage: bool,
    /// The checkpoints' floor: every entry at or below it is in a checkpoint.
    pub floor: u64,
}

impl Wal {
    /// Replays the log in `dir` (calling `apply` for each commit in order), repairs a torn
    /// tail, and opens it for appending.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        options: WalOptions,
        stop: Arc<Stop>,
        mut apply: impl FnMut(u64, &[Op<'_>]) -> Result<(), String>,
    ) -> Result<(Wal, ReplayReport), PersistError> {
        let WalOptions { segment_max, pending_max, salvage, floor } = options;
        storage.create_dir_all(&dir).map_err(|e| PersistError::io(&dir, "create", e))?;
        let mut names: Vec<String> = storage
            .list(&dir)
            .map_err(|e| PersistError::io(&dir, "list", e))?
            .into_iter()
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        let mut report = ReplayReport::default();
        let mut segments = Vec::new();
        let mut open_len = 0u64;
        let mut cut: Option<(usize, u64)> = None;
        let mut last_seq = 0u64;
        for (k, name) in names.iter().enumerate() {
            let path = dir.join(name);
            let last = k + 1 == names.len();
            let bytes = storage.read(&path).map_err(|e| PersistError::io(&path, "read", e))?;
            let shown = format!("wal/{name}");
            let (version, first_seq) = match decode_segment_header(&bytes) {
                Ok(header) => header,
                Err(_) if last && bytes.len() < SEGMENT_HEADER_LEN => {
                    // Crashed while starting this segment: it holds nothing.
                    report.torn_tail = Some((shown, 0));
                    cut = Some((k, 0));
                    break;
                }
                Err(e) => return Err(PersistError::Corrupt(format!("{shown}: {e}"))),
            };
            // Where the log before this segment ends: its last entry, or where the segment
            // before (which may hold none) starts.
            let before = last_seq.max(segments.last().map_or(0, |s: &Segment| s.first_seq.saturating_sub(1)));
            let gap = if *name != segment_name(first_seq) {
                Some(format!("the header's first sequence number {first_seq} does not match the file name"))
            } else if version < 2 {
                // Version 1 segments start at their first entry: gaps are not visible.
                None
            } else if first_seq > before.max(floor).saturating_add(1) {
                // Entries between are missing, unless checkpoints cover them.
                Some(format!(
                    "the log before this segment ends at sequence number {before} and the checkpoints cover it up to {floor}, but this segment follows {}: a segment is missing",
                    first_seq - 1
                ))
            } else {
                None
            };
            if let Some(problem) = gap {
                if !salvage {
                    return Err(PersistError::Corrupt(format!(
                        "{shown}: {problem}; open with salvage to start from the {} entries before it",
                        report.entries
                    )));
                }
                report.salvaged_at = Some((shown, 0, problem));
                cut = Some((k, 0));
                break;
            }
            report.segments += 1;
            segments.push(Segment { first_seq, name: name.clone() });
            let mut at = SEGMENT_HEADER_LEN;
            loop {
                let frame = read_frame(&bytes, at);
                // What a write torn by a crash leaves at the end of the log: an entry cut short,
                // or one whose checksum fails with nothing but zeros after it. But a torn write
                // is the last thing written, so a valid entry after it shows damage in the middle
                // of the log (say a flipped bit in a length), which must not silently drop
                // everything after it.
                let torn = last
                    && match frame {
                        Frame::Incomplete => true,
                        Frame::Bad { next, .. } => {
                            next.is_none_or(|n| bytes[n.min(bytes.len())..].iter().all(|&b| b == 0))
                        }
                        Frame::Good(..) | Frame::End => false,
                    };
                // An entry cut short whose payload is well-formed as far as it goes is what a
                // crash while appending leaves; only a damaged one needs the search for a
                // valid entry after it (which is bounded, and may give up).
                let looks_torn = matches!(frame, Frame::Incomplete)
                    && bytes.len() - at >= FRAME_HEADER_LEN
                    && is_torn_commit(
                        &bytes[at + FRAME_HEADER_LEN..],
                        u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize,
                        last_seq,
                    );
                let follows = if torn && !looks_torn {
                    valid_entry_after(&bytes, at, last_seq)
                } else {
                    Search::NotFound
                };
                let problem = match frame {
                    Frame::Good(payload, next) => match decode_commit(payload) {
                        Ok((seq, ops)) if seq > last_seq => {
                            apply(seq, &ops)
                                .map_err(|e| PersistError::Corrupt(format!("{shown} at offset {at}: {e}")))?;
                            last_seq = seq;
                            report.entries += 1;
                            report.bytes += (next - at) as u64;
                            at = next;
                            continue;
                        }
                        Ok((seq, _)) => format!("sequence number {seq} does not follow {last_seq}"),
                        Err(e) => e.0,
                    },
                    Frame::End => break,
                    _ if torn && follows == Search::NotFound => {
                        report.torn_tail = Some((shown.clone(), at as u64));
                        cut = Some((k, at as u64));
                        break;
                    }
                    Frame::Incomplete if last => format!("entry longer than the rest of the file, {follows}"),
                    Frame::Incomplete => {
                        "entry cut short before the end of a segment that is not the last".into()
                    }
                    Frame::Bad { reason, .. } if torn => format!("{reason}, {follows}"),
                    Frame::Bad { reason, .. } => reason.to_owned(),
                };
                if !salvage {
                    return Err(PersistError::Corrupt(format!(
                        "{shown}: {problem} at offset {at}; open with salvage to start from the {} entries before it",
                        report.entries
                    )));
                }
                report.salvaged_at = Some((shown.clone(), at as u64, problem));
                cut = Some((k, at as u64));
                break;
            }
            if cut.is_some() {
                break;
            }
            if last {
                open_len = bytes.len() as u64;
            }
        }
        report.last_seq = last_seq;
        // Repair: cut the damaged segment at the last good entry and drop every later one.
        if let Some((k, offset)) = cut {
            for name in &names[k + 1..] {
                let path = dir.join(name);
                storage.remove(&path).map_err(|e| PersistError::io(&path, "remove", e))?;
            }
            let path = dir.join(&names[k]);
            if offset < SEGMENT_HEADER_LEN as u64 {
                storage.remove(&path).map_err(|e| PersistError::io(&path, "remove", e))?;
                segments.truncate(k);
                open_len = 0;
            } else {
                let mut f = storage.open_append(&path).map_err(|e| PersistError::io(&path, "open", e))?;
                f.set_len(offset)
                    .and_then(|()| f.sync())
                    .map_err(|e| PersistError::io(&path, "truncate", e))?;
                segments.truncate(k + 1);
                open_len = offset;
            }
            storage.sync_dir(&dir).map_err(|e| PersistError::io(&dir, "sync", e))?;
        }
        let file = match segments.last() {
            Some(seg) if open_len > 0 => {
                let path = dir.join(&seg.name);
                Some(storage.open_append(&path).map_err(|e| PersistError::io(&path, "open", e))?)
            }
            _ => None,
        };
        let wal = Wal {
            storage,
            dir,
            segment_max,
            pending_max,
            pending: Mutex::new(Pending::default()),
            output: Mutex::new(Output {
                file,
                segments,
                len: open_len,
                retry: Pending::default(),
                roll: false,
            }),
            // Segments are named after the last sequence number logged before them: nothing
            // below the checkpoints' floor is logged any more.
            durable: AtomicU64::new(last_seq.max(floor)),
            unwritten: AtomicUsize::new(0),
            written_since_checkpoint: AtomicU64::new(0),
            stop,
        };
        Ok((wal, report))
    }

    /// True when the buffer has room for another commit. Checked before a commit is applied,
    /// so an append never has to fail.
    pub fn has_room(&self) -> Result<(), PersistError> {
        // An atomic rather than the locks: the output lock is held through fsyncs, which a
        // committer must not wait for.
        let buffered = self.unwritten.load(Ordering::Relaxed);
        if buffered >= self.pending_max {
            return Err(PersistError::Full(format!(
                "{buffered} bytes of committed data are waiting to be written to the log (the limit is {}); the disk may be full",
                self.pending_max
            )));
        }
        Ok(())
    }

    /// Appends one encoded commit. Called in commit order, under the commit lock.
    pub fn append(&self, seq: u64, payload: &[u8]) {
        let mut p = lock(&self.pending);
        if p.bytes.is_empty() {
            p.first_seq = seq;
        }
        let before = p.bytes.len();
        encode_frame(payload, &mut p.bytes);
        p.last_seq = seq;
        self.unwritten.fetch_add(p.bytes.len() - before, Ordering::Relaxed);
    }

    /// The newest sequence number known durable.
    pub fn durable_seq(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Bytes appended since [`take_checkpoint_mark`](Self::take_checkpoint_mark).
    pub fn bytes_since_checkpoint(&self) -> u64 {
        self.written_since_checkpoint.load(Ordering::Relaxed)
    }

    /// Marks the start of a checkpoint: the log's current segment is closed at the next write,
    /// so that it can be removed once the checkpoint covers it.
    pub fn take_checkpoint_mark(&self) {
        self.written_since_checkpoint.store(0, Ordering::Relaxed);
        lock(&self.output).roll = true;
    }

    /// Writes everything appended so far and fsyncs it. Returns the durable sequence number.
    pub fn sync(&self) -> Result<u64, PersistError> {
        let mut out = lock(&self.output);
        self.stop.check()?;
        let taken = std::mem::take(&mut *lock(&self.pending));
        if !taken.bytes.is_empty() {
            if out.retry.bytes.is_empty() {
                out.retry = taken;
            } else {
                out.retry.bytes.extend_from_slice(&taken.bytes);
                out.retry.last_seq = taken.last_seq;
            }
        }
        if out.retry.bytes.is_empty() {
            return Ok(self.durable_seq());
        }
        if out.file.is_none() || out.roll || out.len >= self.segment_max {
            // The new segment follows the last entry written, so that recovery can tell a
            // missing segment from sequence numbers that schema changes used.
            let first = self.durable_seq() + 1;
            self.roll(&mut out, first)?;
        }
        let name = out.segments.last().map(|s| s.name.clone()).unwrap_or_default();
        let path = self.dir.join(&name);
        let len = out.len;
        let batch = std::mem::take(&mut out.retry);
        let file = out.file.as_mut().expect("a segment is open");
        if let Err(e) = file.write_all(&batch.bytes) {
            // Part of the batch may be in the file: cut it back so the next attempt appends
            // whole entries after the last good one.
            if let Err(cut) = file.set_len(len) {
                let reason =
                    format!("cutting wal/{name} back to {len} bytes after a failed write failed: {cut}");
                self.stop.set(reason.clone());
                return Err(PersistError::Stopped(reason));
            }
            out.retry = batch;
            return Err(PersistError::io(&path, "write", e));
        }
        if let Err(e) = file.sync() {
            let reason = format!(
                "fsync of wal/{name} failed: {e}; writes are stopped so nothing is acknowledged that may not be on disk"
            );
            self.stop.set(reason.clone());
            return Err(PersistError::Stopped(reason));
        }
        out.len += batch.bytes.len() as u64;
        self.unwritten.fetch_sub(batch.bytes.len(), Ordering::Relaxed);
        self.written_since_checkpoint.fetch_add(batch.bytes.len() as u64, Ordering::Relaxed);
        self.durable.store(batch.last_seq, Ordering::Release);
        Ok(batch.last_seq)
    }

    fn roll(&self, out: &mut Output, first_seq: u64) -> Result<(), PersistError> {
        let name = segment_name(first_seq);
        let path = self.dir.join(&name);
        let mut file = self.storage.create(&path).map_err(|e| PersistError::io(&path, "create", e))?;
        let header = encode_segment_header(first_seq);
        file.write_all(&header).map_err(|e| PersistError::io(&path, "write", e))?;
        if let Err(e) = file.sync().and_then(|()| self.storage.sync_dir(&self.dir)) {
            let reason = format!("fsync of wal/{name} failed: {e}; writes are stopped");
            self.stop.set(reason.clone());
            return Err(PersistError::Stopped(reason));
        }
        out.file = Some(file);
        out.len = SEGMENT_HEADER_LEN as u64;
        out.roll = false;
        if out.segments.last().is_some_and(|s| s.first_seq == first_seq) {
            out.segments.pop();
        }
        out.segments.push(Segment { first_seq, name });
        Ok(())
    }

    /// Removes segments whose every entry is at or below `floor` (covered by checkpoints).
    pub fn remove_through(&self, floor: u64) -> Result<usize, PersistError> {
        let mut out = lock(&self.output);
        let mut removed = 0;
        while out.segments.len() > 1 && out.segments[1].first_seq <= floor + 1 {
            let seg = out.segments.remove(0);
            let path = self.dir.join(&seg.name);
            self.storage.remove(&path).map_err(|e| PersistError::io(&path, "remove", e))?;
            removed += 1;
        }
        // The open segment too, when everything in it is covered and nothing waits to be
        // written: the next write starts a new one.
        let idle = out.retry.bytes.is_empty() && lock(&self.pending).bytes.is_empty();
        if idle && self.durable_seq() <= floor && out.segments.len() == 1 {
            let seg = out.segments.remove(0);
            out.file = None;
            out.len = 0;
            let path = self.dir.join(&seg.name);
            self.storage.remove(&path).map_err(|e| PersistError::io(&path, "remove", e))?;
            removed += 1;
        }
        if removed > 0 {
            self.storage.sync_dir(&self.dir).map_err(|e| PersistError::io(&self.dir, "sync", e))?;
        }
        Ok(removed)
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        lock(&self.output).segments.len()
    }
}

/// What the search for a valid entry after a torn-looking one found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// No valid entry starts after it: it is a torn write.
    NotFound,
    /// A valid entry starts at this offset: the entry before it is damage.
    Found(usize),
    /// The search checked as many bytes as it may, up to this offset, without an answer.
    GaveUp(usize),
}

impl std::fmt::Display for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Search::NotFound => f.write_str("with no valid entry after it"),
            Search::Found(p) => write!(f, "though a valid entry follows at offset {p}"),
            Search::GaveUp(p) => write!(
                f,
                "and what follows could not be told apart from valid entries (the search gave up at offset {p})"
            ),
        }
    }
}

/// The search for a valid entry checksums at most this many bytes per byte it searches (plus
/// [`SEARCH_MIN_WORK`]), so that it takes time linear in the segment's size.
const SEARCH_WORK_PER_BYTE: usize = 8;
const SEARCH_MIN_WORK: usize = 16 << 20;

/// Looks for a valid log entry (a good checksum, a well-formed payload, a sequence number
/// above `last_seq`) starting anywhere after offset `at`.
///
/// Every offset is a candidate, but cheap checks come first: a frame length that holds a
/// commit header and fits in the rest of the file, a sequence number above `last_seq`, and an
/// operation count the length can hold. Only then is the payload checksummed, and the bytes
/// checksummed are bounded by a multiple of the bytes searched; past that the search gives up,
/// and the caller treats the entry as damage rather than a torn write.
fn valid_entry_after(bytes: &[u8], at: usize, last_seq: u64) -> Search {
    let end = bytes.len();
    let mut budget = (end - at).saturating_mul(SEARCH_WORK_PER_BYTE).saturating_add(SEARCH_MIN_WORK);
    let u32_at = |p: usize| u32::from_le_bytes(bytes[p..p + 4].try_into().expect("4 bytes")) as usize;
    for p in at + 1..end {
        // The smallest entry: a frame header and a commit header.
        let Some(room) = (end - p).checked_sub(FRAME_HEADER_LEN) else { break };
        if room < COMMIT_HEADER_LEN {
            break;
        }
        let len = u32_at(p);
        if !(COMMIT_HEADER_LEN..=room.min(FRAME_MAX_LEN)).contains(&len) {
            continue;
        }
        let payload = p + FRAME_HEADER_LEN;
        let seq = u64::from_le_bytes(bytes[payload..payload + 8].try_into().expect("8 bytes"));
        let ops = u32_at(payload + 8);
        if seq <= last_seq || ops > (len - COMMIT_HEADER_LEN) / DELETE_LEN {
            continue;
        }
        if len > budget {
            return Search::GaveUp(p);
        }
        budget -= len;
        if let Frame::Good(payload, _) = read_frame(bytes, p)
            && decode_commit(payload).is_ok_and(|(seq, _)| seq > last_seq)
        {
            return Search::Found(p);
        }
    }
    Search::NotFound
}

impl From<io::Error> for PersistError {
    fn from(e: io::Error) -> Self {
        PersistError::Io(e.to_string())
    }
}
