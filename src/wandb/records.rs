//! The `.wandb` record log the official SDK writes and `wandb sync` reads: protobuf
//! `Record`s in 32 KiB blocks of CRC-checked chunks (the LevelDB log format).

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

/// `:W&B`, the u16 0xBEE1 little-endian, version 0.
pub const FILE_HEADER: [u8; 7] = [b':', b'W', b'&', b'B', 0xE1, 0xBE, 0x00];
const BLOCK: usize = 32768;
const CHUNK_HEADER: usize = 7;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

// The subset of `wandb_internal.proto` ezflt writes and reads; field numbers are the wire
// contract (checked against the 0.31.0 descriptors, spec §9.3). Unknown records (telemetry,
// environment, ...) decode with `record_type: None` and are skipped.

#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    #[prost(int64, tag = "1")]
    pub num: i64,
    #[prost(oneof = "RecordType", tags = "2, 3, 6, 17, 18")]
    pub record_type: Option<RecordType>,
}

// A wire type: a handful are alive at once, boxing the run record would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RecordType {
    #[prost(message, tag = "2")]
    History(HistoryRecord),
    #[prost(message, tag = "3")]
    Summary(SummaryRecord),
    #[prost(message, tag = "6")]
    Files(FilesRecord),
    #[prost(message, tag = "17")]
    Run(RunRecord),
    #[prost(message, tag = "18")]
    Exit(RunExitRecord),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RunRecord {
    #[prost(string, tag = "1")]
    pub run_id: String,
    #[prost(string, tag = "2")]
    pub entity: String,
    #[prost(string, tag = "3")]
    pub project: String,
    #[prost(message, optional, tag = "4")]
    pub config: Option<ConfigRecord>,
    #[prost(string, tag = "6")]
    pub run_group: String,
    #[prost(string, tag = "7")]
    pub job_type: String,
    #[prost(string, tag = "8")]
    pub display_name: String,
    #[prost(string, tag = "9")]
    pub notes: String,
    #[prost(string, repeated, tag = "10")]
    pub tags: Vec<String>,
    #[prost(string, tag = "13")]
    pub host: String,
    #[prost(message, optional, tag = "17")]
    pub start_time: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigRecord {
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<Item>,
}

/// `ConfigItem`, `HistoryItem` and `SummaryItem` share this layout.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Item {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, repeated, tag = "2")]
    pub nested_key: Vec<String>,
    #[prost(string, tag = "16")]
    pub value_json: String,
}

impl Item {
    pub fn new(key: &str, value_json: String) -> Item {
        Item {
            key: key.to_string(),
            nested_key: vec![],
            value_json,
        }
    }

    /// The key as one string (`a/b` for a nested key).
    pub fn name(&self) -> String {
        if self.key.is_empty() {
            self.nested_key.join("/")
        } else {
            self.key.clone()
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryRecord {
    #[prost(message, repeated, tag = "1")]
    pub item: Vec<Item>,
    #[prost(message, optional, tag = "2")]
    pub step: Option<HistoryStep>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryStep {
    #[prost(int64, tag = "1")]
    pub num: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryRecord {
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<Item>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FilesRecord {
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<FilesItem>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FilesItem {
    #[prost(string, tag = "1")]
    pub path: String,
    /// NOW = 0, END = 1, LIVE = 2.
    #[prost(int32, tag = "2")]
    pub policy: i32,
    /// OTHER = 0, WANDB = 1, MEDIA = 2.
    #[prost(int32, tag = "3")]
    pub r#type: i32,
}

pub const FILE_TYPE_MEDIA: i32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub struct RunExitRecord {
    #[prost(int32, tag = "1")]
    pub exit_code: i32,
    #[prost(int32, tag = "2")]
    pub runtime: i32,
}

/// Appends records to a `.wandb` file; each record is flushed to the OS as it is written,
/// so a crash loses at most the record being written.
pub struct LogWriter {
    out: BufWriter<File>,
    pos: usize,
    num: i64,
}

impl LogWriter {
    pub fn create(path: &Path) -> Result<LogWriter> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = LogWriter {
            out: BufWriter::new(f),
            pos: 0,
            num: 0,
        };
        w.put(&FILE_HEADER)?;
        w.out.flush()?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len();
        Ok(())
    }

    fn chunk(&mut self, kind: u8, payload: &[u8]) -> Result<()> {
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(payload);
        let mut head = [0u8; CHUNK_HEADER];
        head[..4].copy_from_slice(&h.finalize().to_le_bytes());
        head[4..6].copy_from_slice(&(payload.len() as u16).to_le_bytes());
        head[6] = kind;
        self.put(&head)?;
        self.put(payload)
    }

    /// Writes one record (numbered 1, 2, 3... as the SDK does) and flushes it.
    pub fn write(&mut self, record: RecordType) -> Result<()> {
        self.num += 1;
        let rec = Record {
            num: self.num,
            record_type: Some(record),
        };
        let bytes = prost::Message::encode_to_vec(&rec);
        self.frame(&bytes)?;
        self.out.flush().context("writing the W&B record log")
    }

    /// LevelDB log framing: chunks never cross a block; fewer than 7 bytes left are zero
    /// padding; exactly 7 left hold a zero-length FIRST chunk (as the Go writer does).
    fn frame(&mut self, mut rec: &[u8]) -> Result<()> {
        let mut first = true;
        loop {
            let mut left = BLOCK - self.pos % BLOCK;
            if left < CHUNK_HEADER {
                self.put(&vec![0u8; left])?;
                left = BLOCK;
            }
            let room = left - CHUNK_HEADER;
            if rec.len() <= room {
                return self.chunk(if first { FULL } else { LAST }, rec);
            }
            let (head, tail) = rec.split_at(room);
            self.chunk(if first { FIRST } else { MIDDLE }, head)?;
            rec = tail;
            first = false;
        }
    }
}

/// Why reading stopped before the end of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Damage {
    /// The file ends inside a chunk or a record (a crash while writing, or still being written).
    Truncated,
    /// A chunk's CRC or framing is wrong at this byte offset.
    Corrupt(usize),
}

/// Records parsed from a record log, and where parsing stopped.
pub struct Parsed {
    pub records: Vec<Record>,
    /// Byte offset just past the last complete record: where to continue reading a file
    /// that is still growing.
    pub end: usize,
    pub damage: Option<Damage>,
}

/// Parses `data` (a whole file, or a growing file read again) from byte `start`, which must
/// be 0 or an `end` returned earlier.
pub fn parse(data: &[u8], start: usize) -> Result<Parsed> {
    if data.len() < FILE_HEADER.len() {
        return Ok(Parsed {
            records: vec![],
            end: start,
            damage: Some(Damage::Truncated),
        });
    }
    if data[..FILE_HEADER.len()] != FILE_HEADER {
        bail!("not a W&B record log (the file does not start with ':W&B')");
    }
    let start = start.max(FILE_HEADER.len()).min(data.len());
    Ok(parse_tail(&data[start..], start))
}

/// Parses the bytes of a record log from file offset `base` (0 excluded: past the header;
/// `base` must be where a record starts), so a growing log is read only once.
pub fn parse_tail(tail: &[u8], base: usize) -> Parsed {
    let total = base + tail.len();
    let mut pos = base;
    let mut end = pos;
    let mut records = vec![];
    let mut buf: Vec<u8> = vec![];
    let mut inside = false;
    let damage = loop {
        if pos >= total {
            break if inside {
                Some(Damage::Truncated)
            } else {
                None
            };
        }
        let left = BLOCK - pos % BLOCK;
        if left < CHUNK_HEADER {
            pos += left;
            if !inside {
                end = pos.min(total);
            }
            continue;
        }
        if pos + CHUNK_HEADER > total {
            break Some(Damage::Truncated);
        }
        let h = &tail[pos - base..pos - base + CHUNK_HEADER];
        let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let len = u16::from_le_bytes([h[4], h[5]]) as usize;
        let kind = h[6];
        if crc == 0 && len == 0 && kind == 0 {
            // Zero bytes where a chunk should start: a preallocated or torn tail.
            break Some(Damage::Truncated);
        }
        let body_start = pos + CHUNK_HEADER;
        if body_start + len > total {
            break Some(Damage::Truncated);
        }
        if len > left - CHUNK_HEADER {
            break Some(Damage::Corrupt(pos));
        }
        let payload = &tail[body_start - base..body_start - base + len];
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[kind]);
        hasher.update(payload);
        if hasher.finalize() != crc {
            break Some(Damage::Corrupt(pos));
        }
        pos = body_start + len;
        let whole = match (kind, inside) {
            (FULL, false) => Some(payload.to_vec()),
            (FIRST, false) => {
                buf = payload.to_vec();
                inside = true;
                None
            }
            (MIDDLE, true) => {
                buf.extend_from_slice(payload);
                None
            }
            (LAST, true) => {
                inside = false;
                let mut b = std::mem::take(&mut buf);
                b.extend_from_slice(payload);
                Some(b)
            }
            _ => break Some(Damage::Corrupt(pos - len - CHUNK_HEADER)),
        };
        if let Some(bytes) = whole {
            match <Record as prost::Message>::decode(bytes.as_slice()) {
                Ok(r) => records.push(r),
                Err(_) => break Some(Damage::Corrupt(pos - len - CHUNK_HEADER)),
            }
            end = pos;
        }
    };
    Parsed {
        records,
        end,
        damage,
    }
}

/// Reads a whole record log.
pub fn read(path: &Path) -> Result<Parsed> {
    let mut data = vec![];
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .with_context(|| format!("reading {}", path.display()))?;
    parse(&data, 0).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(step: i64, pad: usize) -> RecordType {
        RecordType::History(HistoryRecord {
            item: vec![
                Item::new("_step", step.to_string()),
                Item::new("blob", format!("\"{}\"", "x".repeat(pad))),
            ],
            step: Some(HistoryStep { num: step }),
        })
    }

    fn steps(p: &Parsed) -> Vec<i64> {
        p.records
            .iter()
            .filter_map(|r| match &r.record_type {
                Some(RecordType::History(h)) => h.step.as_ref().map(|s| s.num),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn round_trip_across_blocks_and_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.wandb");
        let mut w = LogWriter::create(&p).unwrap();
        // A record spanning three blocks, then small ones that land on every boundary case.
        w.write(history(0, 70_000)).unwrap();
        for s in 1..400 {
            w.write(history(s, (s as usize * 37) % 300)).unwrap();
        }
        drop(w);
        let parsed = read(&p).unwrap();
        assert_eq!(parsed.damage, None);
        assert_eq!(steps(&parsed), (0..400).collect::<Vec<_>>());
        assert_eq!(parsed.records[399].num, 400);
    }

    #[test]
    fn exactly_seven_bytes_left_writes_an_empty_first_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.wandb");
        let mut w = LogWriter::create(&p).unwrap();
        // Fill the first block so exactly 7 bytes remain before its end.
        let want = BLOCK - 7 - 7 - 7; // file header, chunk header, 7 bytes left
        let size = |pad: usize| {
            prost::Message::encode_to_vec(&Record {
                num: 1,
                record_type: Some(history(0, pad)),
            })
            .len()
        };
        let pad = (0..want).rev().find(|&p| size(p) == want).unwrap();
        w.write(history(0, pad)).unwrap();
        assert_eq!(w.pos, BLOCK - 7);
        w.write(history(1, 10)).unwrap();
        drop(w);
        let data = std::fs::read(&p).unwrap();
        assert_eq!(&data[BLOCK - 7 + 4..BLOCK], &[0, 0, FIRST]);
        assert_eq!(steps(&parse(&data, 0).unwrap()), vec![0, 1]);
    }

    #[test]
    fn truncation_and_corruption_are_reported_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.wandb");
        let mut w = LogWriter::create(&p).unwrap();
        for s in 0..5 {
            w.write(history(s, 50)).unwrap();
        }
        drop(w);
        let data = std::fs::read(&p).unwrap();
        let cut = parse(&data[..data.len() - 10], 0).unwrap();
        assert_eq!(steps(&cut), vec![0, 1, 2, 3]);
        assert_eq!(cut.damage, Some(Damage::Truncated));
        // Continuing from `end` once the rest arrived yields the last record.
        let rest = parse(&data, cut.end).unwrap();
        assert_eq!(steps(&rest), vec![4]);
        let mut bad = data.clone();
        let n = bad.len();
        bad[n - 20] ^= 0xff;
        let c = parse(&bad, 0).unwrap();
        assert_eq!(steps(&c), vec![0, 1, 2, 3]);
        assert!(matches!(c.damage, Some(Damage::Corrupt(_))));
        assert!(parse(b"not a wandb file", 0).is_err());
    }
}
