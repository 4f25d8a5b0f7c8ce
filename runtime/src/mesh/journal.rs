//! A node's journal: what it must not forget when its process dies. Every data frame it
//! receives is written here before it is acknowledged, and so is, before each tick runs,
//! which frames the tick took. A node restarted with the same journal replays its ticks with
//! exactly the inputs they had (its feeds are a function of the tick), so it rebuilds its
//! state and sends again the same frames with the same numbers, which its peers already have
//! and drop; frames it had received but not taken are taken afresh. Its first record is the
//! address it listens on, which the restarted process binds again, so its peers find it.
//!
//! The records go to a [`RecordFile`] (`records.rs`): each is synced to disk before the
//! record's effect is visible to anyone, and a record cut short by a crash ends the journal.

use crate::records::{file_name, RecordFile};
use crate::wire::DataFrame;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A record; borrowed when written (a frame is not copied to be journaled), owned when read.
#[derive(Serialize, Deserialize)]
enum Record<'a> {
    Listen(Cow<'a, str>),
    Frame { from: usize, frame: Cow<'a, DataFrame> },
    Took { tick: u64, frames: Vec<(usize, u64)>, batch: Option<u64> },
}

/// Per tick that took anything: the frames it took, in order, and the batch position.
pub(crate) type Took = BTreeMap<u64, (Vec<(usize, u64)>, Option<u64>)>;

/// What a journal held when the node started.
#[derive(Default)]
pub(crate) struct Recovered {
    pub listen: Option<String>,
    /// Every frame received, by (sender, number).
    pub frames: HashMap<(usize, u64), DataFrame>,
    pub took: Took,
}

pub(crate) struct Journal(RecordFile);

impl Journal {
    /// Opens (or creates) node `node`'s journal in `dir`; returns it and what it held.
    pub fn open(dir: &Path, node: &str) -> Result<(Journal, Recovered), String> {
        let (file, records) = RecordFile::open::<Record<'static>>(&dir.join(file_name(node, "journal")))?;
        let mut r = Recovered::default();
        for record in records {
            match record {
                Record::Listen(a) => r.listen = Some(a.into_owned()),
                Record::Frame { from, frame } => {
                    let frame = frame.into_owned();
                    r.frames.insert((from, frame.seq), frame);
                }
                Record::Took { tick, frames, batch } => {
                    r.took.insert(tick, (frames, batch));
                }
            }
        }
        Ok((Journal(file), r))
    }

    fn append(&mut self, record: &Record<'_>) -> Result<(), String> {
        self.0.append(record)
    }

    pub fn listen(&mut self, addr: &str) -> Result<(), String> {
        self.append(&Record::Listen(Cow::Borrowed(addr)))
    }

    pub fn frame(&mut self, from: usize, frame: &DataFrame) -> Result<(), String> {
        self.append(&Record::Frame { from, frame: Cow::Borrowed(frame) })
    }

    pub fn took(&mut self, tick: u64, frames: Vec<(usize, u64)>, batch: Option<u64>) -> Result<(), String> {
        self.append(&Record::Took { tick, frames, batch })
    }
}

#[cfg(test)]
mod tests {
    use super::Journal;
    use crate::wire::DataFrame;

    #[test]
    fn a_journal_gives_back_its_records_and_drops_a_torn_one() {
        let tmp = tempfile::tempdir().expect("a private temporary directory");
        let dir = tmp.path().to_path_buf();
        let (mut j, r) = Journal::open(&dir, "report[1]").expect("open");
        assert!(r.listen.is_none() && r.frames.is_empty());
        j.listen("127.0.0.1:9").expect("write");
        j.frame(2, &DataFrame { seq: 1, messages: vec![], position: Some(0) }).expect("write");
        j.took(0, vec![(2, 1)], Some(0)).expect("write");
        drop(j);
        // A crash in the middle of a record: half a length prefix.
        let path = dir.join("report_1_.journal");
        let mut bytes = std::fs::read(&path).expect("read");
        let whole = bytes.len();
        bytes.extend_from_slice(&[9, 0, 0]);
        std::fs::write(&path, bytes).expect("write");
        let (_, r) = Journal::open(&dir, "report[1]").expect("open");
        assert_eq!(r.listen.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(r.frames.get(&(2, 1)).map(|f| f.position), Some(Some(0)));
        assert_eq!(r.took.get(&0), Some(&(vec![(2, 1)], Some(0))));
        assert_eq!(std::fs::metadata(&path).map(|m| m.len() as usize).ok(), Some(whole));
    }
}
