//! The inspector's state: the selected item as read from the store, its neighbours, and the pictures the
//! image worker sends back. Requests and results carry the item they are for; a result for an item that
//! is no longer selected is dropped.

use std::collections::HashMap;

use ratatui::layout::Rect;
use torchlight_store::{Item, Store};

use crate::data::{self, Data};
use crate::layout;
use crate::preview::{Picture, PictureError, Rendered, Request, Want, Worker};

/// The selected item, read from the store when the selection changes.
#[derive(Debug, Clone)]
pub struct Inspect {
    pub id: u32,
    pub item: Option<Item>,
    /// k nearest neighbours in the current space, from the analysis (id, cosine distance).
    pub neighbours: Vec<(u32, f32)>,
    /// Probability of the predicted class (read per item: no sort or filter needs the whole column).
    pub confidence: Option<f32>,
}

pub struct Inspector {
    current: Option<Inspect>,
    /// Pictures of the selected item and its neighbours, by item id.
    pictures: HashMap<u32, Picture>,
    picture_errors: HashMap<u32, PictureError>,
    /// None with text-only graphics.
    worker: Option<Worker>,
    last_request: Option<Request>,
}

impl Inspector {
    pub fn new(worker: Option<Worker>) -> Inspector {
        Inspector {
            current: None,
            pictures: HashMap::new(),
            picture_errors: HashMap::new(),
            worker,
            last_request: None,
        }
    }

    /// The selected item, when there is one.
    pub fn current(&self) -> Option<&Inspect> {
        self.current.as_ref()
    }

    /// Whether the inspector shows pictures (the terminal has graphics and a worker draws them).
    pub fn shows_images(&self) -> bool {
        self.worker.is_some()
    }

    pub fn picture(&self, id: u32) -> Option<&Picture> {
        self.pictures.get(&id)
    }

    pub fn has_picture(&self, id: u32) -> bool {
        self.pictures.contains_key(&id)
    }

    /// Why an item has no picture (no thumbnail stored, undecodable bytes), once the worker has said so.
    pub fn picture_error(&self, id: u32) -> Option<&PictureError> {
        self.picture_errors.get(&id)
    }

    /// Forgets the selected item, so that the next `show` reads it again (its neighbours differ per space,
    /// and a reread store may have changed it).
    pub fn forget(&mut self) {
        self.current = None;
    }

    /// Reads `selected` from the store if it is not the item already shown, and asks the worker for the
    /// pictures that fit the inspector `panel` (once per selection and size).
    pub fn show(&mut self, store: &Store, data: &Data, space: usize, selected: Option<u32>, panel: Rect) {
        let Some(id) = selected else {
            self.current = None;
            return;
        };
        if self.current.as_ref().is_none_or(|i| i.id != id) {
            let space_name = data.spaces.get(space).map_or("-", |s| s.name.as_str());
            let (item, neighbours, confidence) = match store.read_txn() {
                Ok(r) => (
                    store.item(&r, id).ok().flatten(),
                    data::neighbours(store, &r, space_name, id).unwrap_or_default(),
                    data::confidence(store, &r, data, space, id),
                ),
                Err(_) => (None, Vec::new(), None),
            };
            self.current = Some(Inspect { id, item, neighbours, confidence });
            self.pictures.clear();
            self.picture_errors.clear();
        }
        let Some(worker) = &self.worker else { return };
        let Some(current) = &self.current else { return };
        let lay = layout::inspector(panel, current.neighbours.len(), true);
        let mut wants = Vec::new();
        if lay.image.width > 0 && lay.image.height > 0 {
            wants.push(Want { item: id, cells: (lay.image.width, lay.image.height) });
        }
        for (slot, &(nid, _)) in lay.thumbs.iter().zip(&current.neighbours) {
            wants.push(Want { item: nid, cells: (slot.width, slot.height) });
        }
        let req = Request { selection: id, wants };
        if self.last_request.as_ref() != Some(&req) {
            // Pictures of another size are stale too.
            if self.last_request.as_ref().is_some_and(|r| r.selection == id) {
                self.pictures.clear();
            }
            worker.request(req.clone());
            self.last_request = Some(req);
        }
    }

    /// Keeps a picture from the worker if it was made for the selected item; says whether it was kept.
    pub fn picture_ready(&mut self, r: Rendered) -> bool {
        if self.current.as_ref().is_none_or(|c| c.id != r.selection) {
            return false; // the cursor has moved on
        }
        match r.picture {
            Ok(p) => {
                self.pictures.insert(r.want.item, p);
            }
            Err(e) => {
                self.picture_errors.insert(r.want.item, e);
            }
        }
        true
    }
}
