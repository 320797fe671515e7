//! Checkpoint files: one table's live records as of one commit.
//!
//! A checkpoint is written from an immutable snapshot, so it needs no lock: readers and
//! writers carry on while it is written. Its header records the record size, the count, the
//! id runs and a CRC32 of the body; loading verifies all of it before using a byte.

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::format::{CHECKPOINT_HEADER_LEN, CheckpointHeader, MAX_RECORD_ID};
use super::manifest::{CheckpointEntry, checkpoint_file_name};
use super::vfs::{Storage, WriteFile};
use crate::ids::{RecordId, TableId};
use crate::schema::TableSchema;
use crate::storage::reclaim::Writer;
use crate::storage::table_data::{IdAllocator, TableData};

/// Bytes written per call while streaming records.
const WRITE_CHUNK: usize = 1 << 20;

/// Writes `data/<table>.<generation>.bin` for `table` as of commit `seq`; returns its entry and
/// the file, which the caller fsyncs (a failed fsync stops writes) before making the directory
/// entry durable.
pub fn write(
    storage: &dyn Storage,
    data_dir: &Path,
    table: &TableData,
    generation: u64,
    seq: u64,
) -> io::Result<(CheckpointEntry, Box<dyn WriteFile>)> {
    let rs = table.geom.record_size;
    // First pass: count, id runs and checksum, so the header can go first.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut crc = crc32fast::Hasher::new();
    let mut count = 0u64;
    table.for_each_live(|id, bytes| {
        crc.update(bytes);
        count += 1;
        match runs.last_mut() {
            Some((first, len)) if *first + *len == id.0 => *len += 1,
            _ => runs.push((id.0, 1)),
        }
    });
    let mut run_bytes = Vec::with_capacity(runs.len() * 16);
    for (first, len) in &runs {
        run_bytes.extend_from_slice(&first.to_le_bytes());
        run_bytes.extend_from_slice(&len.to_le_bytes());
    }
    crc.update(&run_bytes);
    let header = CheckpointHeader {
        table_id: table.id.0,
        record_size: rs as u64,
        record_count: count,
        id_runs: runs.len() as u64,
        next_id: table.next_id,
        seq,
        body_crc: crc.finalize(),
    };
    let file = checkpoint_file_name(&table.schema.name, generation);
    let mut out = storage.create(&data_dir.join(&file))?;
    out.write_all(&header.encode())?;
    let mut buf = Vec::with_capacity(WRITE_CHUNK + rs);
    let mut failed = None;
    table.for_each_live(|_, bytes| {
        if failed.is_some() {
            return;
        }
        buf.extend_from_slice(bytes);
        if buf.len() >= WRITE_CHUNK {
            if let Err(e) = out.write_all(&buf) {
                failed = Some(e);
            }
            buf.clear();
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    buf.extend_from_slice(&run_bytes);
    out.write_all(&buf)?;
    let entry = CheckpointEntry {
        file,
        generation,
        seq,
        records: count,
        crc32: header.body_crc,
        bytes: header.file_len().expect("sizes of a table in memory fit u64"),
    };
    Ok((entry, out))
}

/// Rebuilds a table from the bytes of its checkpoint file, verifying them first: header,
/// size, checksum (also against `schema.json`), id runs, and record contents. Errors name the
/// file and the offset.
pub fn load(
    bytes: &[u8],
    path: &str,
    id: TableId,
    schema: Arc<TableSchema>,
    version: u64,
    entry: &CheckpointEntry,
    w: &mut Writer,
) -> Result<TableData, String> {
    let err = |msg: String| format!("{path}: {msg}");
    let h = CheckpointHeader::decode(bytes).map_err(err)?;
    if h.table_id != id.0 {
        return Err(err(format!(
            "header names table id {} at offset 16, schema.json says {}",
            h.table_id, id.0
        )));
    }
    let rs = schema.record_size;
    if h.record_size != rs as u64 {
        return Err(err(format!("record size {} at offset 24, the table's schema has {rs}", h.record_size)));
    }
    let expect_len = h.file_len().ok_or_else(|| err("sizes in the header overflow".into()))?;
    if expect_len != bytes.len() as u64 {
        return Err(err(format!(
            "file is {} bytes, but the header (offset 32: {} records of {rs} bytes, {} id runs) needs {expect_len}",
            bytes.len(),
            h.record_count,
            h.id_runs
        )));
    }
    if h.record_count != entry.records || bytes.len() as u64 != entry.bytes {
        return Err(err(format!(
            "holds {} records in {} bytes (offset 32), but schema.json records {} records in {} bytes",
            h.record_count,
            bytes.len(),
            entry.records,
            entry.bytes
        )));
    }
    if h.body_crc != entry.crc32 {
        return Err(err(format!(
            "header checksum {:#010x} (offset 64) differs from the {:#010x} schema.json recorded",
            h.body_crc, entry.crc32
        )));
    }
    let body = &bytes[CHECKPOINT_HEADER_LEN..];
    if crc32fast::hash(body) != h.body_crc {
        return Err(err(format!(
            "checksum mismatch in the body (offsets {CHECKPOINT_HEADER_LEN}..{})",
            bytes.len()
        )));
    }
    let records_len = (h.record_count as usize) * rs;
    let (records, run_bytes) = body.split_at(records_len);
    if !schema.any_bytes_valid() {
        for (i, rec) in records.chunks_exact(rs).enumerate() {
            schema
                .validate_record(rec)
                .map_err(|e| err(format!("record at offset {}: {e}", CHECKPOINT_HEADER_LEN + i * rs)))?;
        }
    }
    let mut table = TableData::new(id, schema, version);
    let mut at = 0usize;
    let mut last_end = 1u64;
    for (i, run) in run_bytes.chunks_exact(16).enumerate() {
        let first = u64::from_le_bytes(run[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(run[8..].try_into().expect("8 bytes"));
        let offset = CHECKPOINT_HEADER_LEN + records_len + i * 16;
        if first < last_end || len == 0 {
            return Err(err(format!("id run at offset {offset} overlaps or is empty")));
        }
        // One past the run's last id: the table's next id at least. When it fits a u64, the
        // last id is at most MAX_RECORD_ID.
        let Some(end) = first.checked_add(len) else {
            return Err(err(format!(
                "id run at offset {offset} ({len} ids from {first}) goes past the highest record id {MAX_RECORD_ID}"
            )));
        };
        let run_end = usize::try_from(len)
            .ok()
            .and_then(|n| n.checked_mul(rs))
            .and_then(|b| at.checked_add(b))
            .filter(|&e| e <= records_len);
        let Some(run_end) = run_end else {
            return Err(err(format!("id run at offset {offset} covers more records than the file holds")));
        };
        table.load_run(w, RecordId(first), &records[at..run_end]);
        at = run_end;
        last_end = end;
    }
    if at != records_len {
        return Err(err(format!("id runs cover {} records, the header says {}", at / rs, h.record_count)));
    }
    if h.next_id < last_end {
        return Err(err(format!(
            "next id {} at offset 48 is below the last record id {}",
            h.next_id,
            last_end - 1
        )));
    }
    table.ids = IdAllocator::new(h.next_id);
    table.next_id = h.next_id;
    Ok(table)
}
