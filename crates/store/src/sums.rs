//! Checksums of what the store writes. LMDB keeps none of its own, so a flipped byte in `data.mdb` would pass
//! unnoticed into an export or an analysis. Every item record, thumbnail, embedding and probability row gets a
//! CRC-32 of its key and value in the `sums` database, written in the same transaction as the record (analysis
//! columns carry theirs in their own header); readers that must not pass damage on (export, analyze, verify)
//! check them.
//!
//! Key of a sum: a kind byte, then the record's own key (`u32` id; `u16` space + `u32` id; a column's name).
//! Records written before checksums existed (stores of schema version 1) have none and read as unchecked.

use crate::{Result, RoTxn, RwTxn, Store, StoreError};

/// What a checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Item,
    Thumbnail,
    Embedding,
    Probs,
    Column,
}

impl Part {
    fn tag(self) -> u8 {
        match self {
            Part::Item => 1,
            Part::Thumbnail => 2,
            Part::Embedding => 3,
            Part::Probs => 4,
            Part::Column => unreachable!("columns carry their own checksum"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Part::Item => "item",
            Part::Thumbnail => "thumbnail",
            Part::Embedding => "embedding",
            Part::Probs => "probabilities",
            Part::Column => "column",
        }
    }
}

/// The key of the sum of record `record_key` (the record's own key bytes).
pub(crate) fn key(part: Part, record_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + record_key.len());
    k.push(part.tag());
    k.extend_from_slice(record_key);
    k
}

/// CRC-32 of a record's key and value, so a value moved under another key does not check either.
pub(crate) fn crc(record_key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(record_key);
    h.update(value);
    h.finalize()
}

/// How a record compares with its sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// Written before checksums existed.
    Unchecked,
    Mismatch,
}

impl Store {
    pub(crate) fn put_sum(&self, wtxn: &mut RwTxn, part: Part, record_key: &[u8], value: &[u8]) -> Result<()> {
        let Some(sums) = self.db.sums else { return Err(StoreError::ReadOnly(self.dir().to_path_buf())) };
        sums.put(wtxn, &key(part, record_key), &crc(record_key, value)).map_err(|e| self.heed_err(e))
    }

    /// Checks one record against its sum.
    pub(crate) fn check_sum(&self, rtxn: &RoTxn, part: Part, record_key: &[u8], value: &[u8]) -> Result<Check> {
        let Some(sums) = self.db.sums else { return Ok(Check::Unchecked) };
        Ok(match sums.get(rtxn, &key(part, record_key)).map_err(|e| self.heed_err(e))? {
            None => Check::Unchecked,
            Some(want) if want == crc(record_key, value) => Check::Ok,
            Some(_) => Check::Mismatch,
        })
    }
}
