//! `torchlight verify`: every record that has a checksum is checked against it, and the store's shape against
//! itself (item ids without gaps, records that decode, rows of the width their space says), so damage is named
//! by item and space before an export or an analysis would pass it on.

use heed::types::Bytes;

use crate::sums::{Check, Part};
use crate::{COLUMN_CHECKSUM_MISMATCH, Item, Result, RoTxn, Store, StoreError, decode_column, ids_text};

/// Something wrong with some records of one part of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub part: Part,
    /// The space, for embeddings, probabilities and a space's columns.
    pub space: Option<String>,
    /// Item ids, or empty for a column.
    pub ids: Vec<u32>,
    /// The column's name, for a column.
    pub column: Option<String>,
    pub why: Why,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The record does not match its checksum.
    Checksum,
    /// The record cannot be read as what it should be.
    Undecodable,
    /// Ids below the highest one present have no record.
    Missing,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (&self.column, self.part) {
            (Some(c), _) => format!("column {c}"),
            (None, Part::Item) => format!("the records of {}", ids_text(&self.ids)),
            (None, part) => format!("the {}s of {}", part.name(), ids_text(&self.ids)),
        };
        let space = match (&self.column, &self.space) {
            (None, Some(s)) => format!(" in space {s}"),
            _ => String::new(),
        };
        let why = match self.why {
            Why::Checksum => "do not match their checksums",
            Why::Undecodable => "cannot be decoded",
            Why::Missing => "are missing",
        };
        write!(f, "{what}{space}: {why}")
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub items: u32,
    /// Records compared with their checksum.
    pub checked: u64,
    /// Records written before checksums existed (schema version 1): read, but not checkable.
    pub unchecked: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn is_damaged(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Ids of items with a problem in `parts`, sorted.
    pub fn damaged_items(&self, parts: &[Part]) -> Vec<u32> {
        let mut ids: Vec<u32> =
            self.problems.iter().filter(|p| parts.contains(&p.part)).flat_map(|p| p.ids.iter().copied()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn tally(&mut self, check: Check) -> bool {
        match check {
            Check::Ok => self.checked += 1,
            Check::Unchecked => self.unchecked += 1,
            Check::Mismatch => {
                self.checked += 1;
                return false;
            }
        }
        true
    }

    fn add(&mut self, part: Part, space: Option<&str>, ids: Vec<u32>, why: Why) {
        if !ids.is_empty() {
            self.problems.push(Problem { part, space: space.map(str::to_string), ids, column: None, why });
        }
    }
}

impl Store {
    /// Checks everything; `progress(stage, done, total)` is called as it goes.
    pub fn verify(&self, progress: &dyn Fn(&str, u64, u64)) -> Result<Report> {
        let rtxn = self.read_txn()?;
        let mut report = Report { items: self.item_count(&rtxn)?, ..Report::default() };
        self.verify_items(&rtxn, &mut report, progress)?;
        self.verify_thumbnails(&rtxn, &mut report)?;
        for space in self.spaces(&rtxn)? {
            progress(&format!("space {}", space.name), 0, u64::from(report.items));
            for (part, width) in [(Part::Embedding, space.dim), (Part::Probs, space.num_classes)] {
                if width > 0 {
                    self.verify_rows(&rtxn, part, space.index, &space.name, width as usize, &mut report)?;
                }
            }
            progress(&format!("space {}", space.name), u64::from(report.items), u64::from(report.items));
        }
        for r in self.db.columns.iter(&rtxn).map_err(|e| self.heed_err(e))? {
            let (key, bytes) = r.map_err(|e| self.heed_err(e))?;
            verify_column(key, bytes, &mut report)?;
        }
        Ok(report)
    }

    fn verify_items(&self, rtxn: &RoTxn, report: &mut Report, progress: &dyn Fn(&str, u64, u64)) -> Result<()> {
        let total = u64::from(report.items);
        let iter = self.db.items.remap_data_type::<Bytes>().iter(rtxn).map_err(|e| self.heed_err(e))?;
        let (mut damaged, mut undecodable, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        let mut next = 0u32;
        for r in iter {
            let (id, bytes) = r.map_err(|e| self.heed_err(e))?;
            missing.extend(next..id.max(next));
            next = id.saturating_add(1);
            if !report.tally(self.check_sum(rtxn, Part::Item, &id.to_be_bytes(), bytes)?) {
                damaged.push(id);
            } else if bincode::deserialize::<Item>(bytes).is_err() {
                undecodable.push(id);
            }
            if id % 65_536 == 0 {
                progress("items", u64::from(id), total);
            }
        }
        progress("items", total, total);
        report.add(Part::Item, None, damaged, Why::Checksum);
        report.add(Part::Item, None, undecodable, Why::Undecodable);
        report.add(Part::Item, None, missing, Why::Missing);
        Ok(())
    }

    fn verify_thumbnails(&self, rtxn: &RoTxn, report: &mut Report) -> Result<()> {
        let iter = self.db.thumbs.iter(rtxn).map_err(|e| self.heed_err(e))?;
        let mut damaged = Vec::new();
        for r in iter {
            let (id, png) = r.map_err(|e| self.heed_err(e))?;
            if !report.tally(self.check_sum(rtxn, Part::Thumbnail, &id.to_be_bytes(), png)?) {
                damaged.push(id);
            }
        }
        report.add(Part::Thumbnail, None, damaged, Why::Checksum);
        Ok(())
    }

    fn verify_rows(
        &self,
        rtxn: &RoTxn,
        part: Part,
        space: u16,
        name: &str,
        width: usize,
        report: &mut Report,
    ) -> Result<()> {
        let db = if part == Part::Probs { self.db.probs } else { self.db.vectors };
        let range = crate::space_range(space);
        let iter = db.range(rtxn, &range).map_err(|e| self.heed_err(e))?;
        let (mut damaged, mut undecodable, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        let mut next = 0u32;
        for r in iter {
            let (key, bytes) = r.map_err(|e| self.heed_err(e))?;
            let id = key as u32;
            missing.extend(next..id.max(next));
            next = id.saturating_add(1);
            if !report.tally(self.check_sum(rtxn, part, &key.to_be_bytes(), bytes)?) {
                damaged.push(id);
            } else if bytes.len() != width * 4 {
                undecodable.push(id);
            }
        }
        report.add(part, Some(name), damaged, Why::Checksum);
        report.add(part, Some(name), undecodable, Why::Undecodable);
        report.add(part, Some(name), missing, Why::Missing);
        Ok(())
    }
}

/// A column blob against the checksum in its header, and that it decodes.
fn verify_column(key: &str, bytes: &[u8], report: &mut Report) -> Result<()> {
    let checked = bytes.get(1) == Some(&crate::COLUMN_CHECKED);
    report.tally(if checked { Check::Ok } else { Check::Unchecked });
    let why = match decode_column(key, bytes) {
        Err(StoreError::Corrupt { why, .. }) if why == COLUMN_CHECKSUM_MISMATCH => Some(Why::Checksum),
        Err(StoreError::Corrupt { .. }) => Some(Why::Undecodable),
        other => other.map(|_| None)?,
    };
    if let Some(why) = why {
        let space = key.split_once('/').map(|(s, _)| s.to_string()).filter(|s| !s.is_empty());
        report.problems.push(Problem {
            part: Part::Column,
            space,
            ids: Vec::new(),
            column: Some(key.to_string()),
            why,
        });
    }
    Ok(())
}
