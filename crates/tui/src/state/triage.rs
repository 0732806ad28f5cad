//! Triage: tags, new labels and notes written to the store, their undo, and the marks a bulk action
//! applies to. Every action is one committed write transaction, so a killed browser loses nothing.
//!
//! The browser's copy of the tags lives in `Data::tags` (filters and sorts read it there); each method
//! takes it alongside the store and keeps the two equal. Methods return the message to show.

use std::collections::{HashMap, HashSet};

use torchlight_store::{Result, Store, Tag, TagKind};

/// What to tell the user: Ok when the store took the write, Err when it refused it.
pub type Said = std::result::Result<String, String>;

/// The tag records of the items one action changed, as they were before it.
type Previous = Vec<(u32, Option<Tag>)>;

#[derive(Default)]
pub struct Triage {
    marks: HashSet<u32>,
    /// Newest last.
    undo: Vec<Previous>,
}

impl Triage {
    /// Items marked for a bulk action.
    pub fn marks(&self) -> &HashSet<u32> {
        &self.marks
    }

    pub fn toggle_mark(&mut self, id: u32) {
        if !self.marks.remove(&id) {
            self.marks.insert(id);
        }
    }

    pub fn clear_marks(&mut self) {
        self.marks.clear();
    }

    /// Tags an item `kind`, or untags it when it already has that kind.
    pub fn toggle_tag(&mut self, store: &Store, tags: &mut HashMap<u32, Tag>, id: u32, kind: TagKind) -> Said {
        let mut tag = tags.get(&id).cloned().unwrap_or_default();
        tag.kind = if tag.kind == Some(kind) { None } else { Some(kind) };
        let verb = if tag.kind.is_some() { "tagged" } else { "untagged" };
        self.write(store, tags, vec![(id, tag)])?;
        Ok(format!("#{id} {verb} {}", kind.as_str()))
    }

    /// Tags the marked items `kind`, or every shown item when none is marked, and clears the marks. None
    /// when there is nothing to tag.
    pub fn bulk_tag(
        &mut self,
        store: &Store,
        tags: &mut HashMap<u32, Tag>,
        shown: &[u32],
        kind: TagKind,
    ) -> Option<Said> {
        let targets: Vec<u32> = if self.marks.is_empty() {
            shown.to_vec()
        } else {
            let mut m: Vec<u32> = self.marks.iter().copied().collect();
            m.sort_unstable();
            m
        };
        if targets.is_empty() {
            return None;
        }
        let changes: Vec<(u32, Tag)> = targets
            .iter()
            .map(|&id| {
                let mut tag = tags.get(&id).cloned().unwrap_or_default();
                tag.kind = Some(kind);
                (id, tag)
            })
            .collect();
        let count = changes.len();
        if let Err(e) = self.write(store, tags, changes) {
            return Some(Err(e));
        }
        let what = if self.marks.is_empty() { "shown" } else { "marked" };
        self.marks.clear();
        Some(Ok(format!("tagged {count} {what} items {} (u undoes)", kind.as_str())))
    }

    /// Gives an item a new label, given as its id and name (`None` clears it).
    pub fn set_new_label(
        &mut self,
        store: &Store,
        tags: &mut HashMap<u32, Tag>,
        id: u32,
        label: Option<(u32, &str)>,
    ) -> Said {
        let mut tag = tags.get(&id).cloned().unwrap_or_default();
        tag.new_label = label.map(|l| l.0);
        self.write(store, tags, vec![(id, tag)])?;
        Ok(match label {
            Some((_, name)) => format!("#{id} relabelled {name}"),
            None => format!("#{id} new label cleared"),
        })
    }

    /// Sets an item's note (a blank one removes it).
    pub fn set_note(&mut self, store: &Store, tags: &mut HashMap<u32, Tag>, id: u32, text: &str) -> Said {
        let mut tag = tags.get(&id).cloned().unwrap_or_default();
        tag.note = (!text.trim().is_empty()).then(|| text.trim().to_string());
        self.write(store, tags, vec![(id, tag)])?;
        Ok(format!("#{id} note saved"))
    }

    /// Writes tag records in one transaction and remembers what they replace for undo.
    fn write(
        &mut self,
        store: &Store,
        tags: &mut HashMap<u32, Tag>,
        changes: Vec<(u32, Tag)>,
    ) -> std::result::Result<(), String> {
        let result = (|| -> Result<()> {
            let mut w = store.write_txn()?;
            for (id, tag) in &changes {
                let mut tag = tag.clone();
                tag.updated = now();
                store.put_tag(&mut w, *id, &tag)?;
            }
            store.commit(w)
        })();
        result.map_err(|e| format!("not saved: {e}"))?;
        let mut previous = Vec::with_capacity(changes.len());
        for (id, mut tag) in changes {
            tag.updated = now();
            let old = if tag.is_empty() { tags.remove(&id) } else { tags.insert(id, tag) };
            previous.push((id, old));
        }
        self.undo.push(previous);
        Ok(())
    }

    /// Restores the tag records the newest action replaced.
    pub fn undo(&mut self, store: &Store, tags: &mut HashMap<u32, Tag>) -> String {
        let Some(previous) = self.undo.pop() else {
            return "nothing to undo".into();
        };
        let result = (|| -> Result<()> {
            let mut w = store.write_txn()?;
            for (id, old) in &previous {
                store.put_tag(&mut w, *id, &old.clone().unwrap_or_default())?;
            }
            store.commit(w)
        })();
        match result {
            Ok(()) => {
                for (id, old) in &previous {
                    match old {
                        Some(t) => tags.insert(*id, t.clone()),
                        None => tags.remove(id),
                    };
                }
                format!("undone ({} item{})", previous.len(), if previous.len() == 1 { "" } else { "s" })
            }
            Err(e) => {
                self.undo.push(previous);
                format!("undo not saved: {e}")
            }
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
