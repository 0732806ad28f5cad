//! What the keyboard is talking to: the table, the help overlay, a one-line editor or a class picker.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputPurpose {
    Note,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickPurpose {
    Relabel,
    Label,
    Pred,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    Input { purpose: InputPurpose, text: String },
    Picker { purpose: PickPurpose, cursor: usize },
}
