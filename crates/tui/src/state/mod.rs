//! One part per panel, each with its state behind private fields and the operations that change it: the
//! table's list, triage, the inspector and the scatter. Parts never import each other; `App` hands one
//! what it needs from another.

pub mod inspector;
pub mod list;
pub mod scatter;
pub mod triage;

pub use inspector::Inspector;
pub use list::ListView;
pub use scatter::Scatter;
pub use triage::Triage;
