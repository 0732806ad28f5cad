//! What a key (or mouse event) asks the browser to do. `keys.rs` maps keys to these; `App::update` applies them.

use torchlight_store::TagKind;

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    /// Move the cursor by this many rows (negative: up).
    Move(i64),
    PageDown,
    PageUp,
    Top,
    Bottom,
    /// Jump to a row of the shown list (a mouse click).
    Select(usize),
    NextSort,
    ReverseSort,
    /// Toggle a tag on the selected item (or set it when it has another one).
    Tag(TagKind),
    /// Tag the marked items, or every shown item when none is marked.
    BulkTag(TagKind),
    /// Open the class list to give the selected item a new label.
    Relabel,
    /// Open the note editor for the selected item.
    Note,
    Undo,
    /// Mark or unmark the selected item for a bulk action, then move down.
    ToggleMark,
    /// Close an overlay, clear marks.
    Escape,
    /// Source filter (regular expression) editor.
    SourceFilter,
    LabelFilter,
    PredFilter,
    CycleTagFilter,
    CycleFlagFilter,
    /// 'More like this': show the arroy neighbours of the selected item.
    MoreLikeThis,
    ClearFilters,
    NextSpace,
    SideBySide,
    ZoomIn,
    ZoomOut,
    /// Pan the scatter by a fraction of its width / height.
    Pan(f32, f32),
    ResetView,
    /// Open or close the drift view of a checkpoint series (or the foundation/fine-tuned pair).
    DriftView,
    /// Show the checkpoint this many steps later (negative: earlier).
    Scrub(i64),
    /// Play the checkpoints as an animation, or stop it.
    Play,
    /// Reread the store (an ingest or analysis may have added to it).
    Refresh,
    Help,
    // Inside an overlay:
    /// A typed character in a text editor.
    Char(char),
    Backspace,
    Confirm,
    PickerMove(i64),
}
