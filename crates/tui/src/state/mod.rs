//! One part per panel, each with its state behind private fields and the operations that change it: the
//! table's list, triage, the inspector, the scatter and the drift view. Parts never import each other;
//! `App` hands one what it needs from another.

pub mod drift;
pub mod inspector;
pub mod list;
pub mod scatter;
pub mod triage;

pub use drift::DriftView;
pub use inspector::Inspector;
pub use list::ListView;
pub use scatter::Scatter;
pub use triage::Triage;
