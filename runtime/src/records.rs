//! An append-only file of records, what a process of a run across processes must not forget
//! when it dies: a node's journal (`mesh/journal.rs`) and the embedded ordering service's
//! (`order/sequencer.rs`).
//!
//! The file is a sequence of length-prefixed bincode records. Each record is written and
//! synced to disk (`fdatasync`) before [`RecordFile::append`] returns, so before its effect is
//! visible to anyone: it outlives the process (`kill -9` included) and the machine, as far as
//! the disk keeps what it acknowledged. The file is created with mode 0600; its directory
//! should be private (the launcher makes one, 0700, with an unpredictable name). A record cut
//! short by a crash in the middle of a write ends the file: it is dropped, and the file
//! truncated there, so the next record follows the last whole one.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The largest record read back (a data frame is at most `max_frame`, itself at most 1 GiB;
/// the bound keeps a corrupted length from making the reader allocate more).
const RECORD_LIMIT: u64 = 1 << 30;

pub(crate) struct RecordFile {
    file: std::fs::File,
    path: PathBuf,
}

impl RecordFile {
    /// Opens (or creates) the file at `path`; returns it and the whole records it held.
    pub fn open<R: DeserializeOwned>(path: &Path) -> Result<(RecordFile, Vec<R>), String> {
        let shown = path.display().to_string();
        let mut options = std::fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| format!("cannot open the journal `{shown}`: {e}"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| format!("cannot read the journal `{shown}`: {e}"))?;
        let (records, good) = read(&bytes);
        if good < bytes.len() {
            file.set_len(good as u64).map_err(|e| format!("cannot truncate the journal `{shown}`: {e}"))?;
        }
        Ok((RecordFile { file, path: path.to_path_buf() }, records))
    }

    /// Writes `record` and syncs it to disk.
    pub fn append<R: Serialize>(&mut self, record: &R) -> Result<(), String> {
        let body = bincode::serialize(record).map_err(|e| format!("cannot encode a journal record: {e}"))?;
        let mut bytes = (body.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write the journal `{}`: {e}", self.path.display()))
    }
}

/// The whole records of `bytes`, and how many bytes hold them.
fn read<R: DeserializeOwned>(bytes: &[u8]) -> (Vec<R>, usize) {
    let mut records = Vec::new();
    let mut at = 0usize;
    loop {
        let Some(len) = bytes.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes) else {
            return (records, at);
        };
        if len > RECORD_LIMIT {
            return (records, at);
        }
        let Some(body) = bytes.get(at + 8..at + 8 + len as usize) else { return (records, at) };
        let Ok(record) = bincode::deserialize::<R>(body) else { return (records, at) };
        records.push(record);
        at += 8 + len as usize;
    }
}

/// A file name for `name` (a node's, `report[1]`) that is safe in a directory: letters and
/// digits kept, anything else `_`.
pub(crate) fn file_name(name: &str, extension: &str) -> String {
    let stem: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{stem}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::RecordFile;

    #[test]
    fn records_come_back_in_order_and_a_torn_one_is_dropped_and_truncated() {
        let tmp = tempfile::tempdir().expect("a private temporary directory");
        let path = tmp.path().join("x.journal");
        let (mut f, old) = RecordFile::open::<(u32, String)>(&path).expect("open");
        assert!(old.is_empty());
        f.append(&(1u32, "one".to_string())).expect("write");
        f.append(&(2u32, "two".to_string())).expect("write");
        drop(f);
        let whole = std::fs::metadata(&path).map(|m| m.len()).expect("size");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&[9, 0, 0]);
        std::fs::write(&path, bytes).expect("write");
        let (mut f, old) = RecordFile::open::<(u32, String)>(&path).expect("open");
        assert_eq!(old, vec![(1, "one".to_string()), (2, "two".to_string())]);
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(whole));
        f.append(&(3u32, "three".to_string())).expect("write");
        drop(f);
        let (_, old) = RecordFile::open::<(u32, String)>(&path).expect("open");
        assert_eq!(old.len(), 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).expect("mode");
            assert_eq!(mode, 0o600);
        }
    }
}
