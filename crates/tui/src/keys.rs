//! Every key binding of the browser, in one table that both key handling and the help overlay read.

use std::sync::LazyLock;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::action::Action;
use crate::mode::Mode;
use torchlight_store::TagKind;

/// A key: code plus Ctrl (Shift is part of the character for letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: true }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

pub struct Binding {
    pub keys: Vec<Key>,
    pub action: Action,
    pub help: &'static str,
    pub group: &'static str,
}

fn b(keys: &[Key], action: Action, group: &'static str, help: &'static str) -> Binding {
    Binding { keys: keys.to_vec(), action, help, group }
}

/// Normal-mode bindings, in help order.
pub static NORMAL: LazyLock<Vec<Binding>> = LazyLock::new(|| {
    use Action as A;
    use KeyCode as C;
    vec![
        b(&[k('j'), code(C::Down)], A::Move(1), "move", "next item"),
        b(&[k('k'), code(C::Up)], A::Move(-1), "move", "previous item"),
        b(&[ctrl('d'), ctrl('f'), code(C::PageDown)], A::PageDown, "move", "page down"),
        b(&[ctrl('u'), ctrl('b'), code(C::PageUp)], A::PageUp, "move", "page up"),
        b(&[k('g'), code(C::Home)], A::Top, "move", "first item"),
        b(&[k('G'), code(C::End)], A::Bottom, "move", "last item"),
        b(&[k('s')], A::NextSort, "sort", "next sort column"),
        b(&[k('r')], A::ReverseSort, "sort", "reverse sort order"),
        b(&[k('a')], A::Tag(TagKind::Ok), "triage", "tag ok (again: untag)"),
        b(&[k('x')], A::Tag(TagKind::Outlier), "triage", "tag outlier"),
        b(&[k('m')], A::Tag(TagKind::Mislabeled), "triage", "tag mislabeled"),
        b(&[k('d')], A::Tag(TagKind::Duplicate), "triage", "tag duplicate"),
        b(&[k('e')], A::Relabel, "triage", "set a new label"),
        b(&[k('n')], A::Note, "triage", "add or edit a note"),
        b(&[k('u')], A::Undo, "triage", "undo last triage"),
        b(&[code(C::Char(' '))], A::ToggleMark, "triage", "mark / unmark (bulk)"),
        b(&[k('A')], A::BulkTag(TagKind::Ok), "triage", "bulk ok: marked or shown"),
        b(&[k('X')], A::BulkTag(TagKind::Outlier), "triage", "bulk outlier"),
        b(&[k('M')], A::BulkTag(TagKind::Mislabeled), "triage", "bulk mislabeled"),
        b(&[k('D')], A::BulkTag(TagKind::Duplicate), "triage", "bulk duplicate"),
        b(&[k('/')], A::SourceFilter, "filter", "filter sources by regex"),
        b(&[k('l')], A::LabelFilter, "filter", "filter by label"),
        b(&[k('p')], A::PredFilter, "filter", "filter by predicted label"),
        b(&[k('t')], A::CycleTagFilter, "filter", "cycle tag filter"),
        b(&[k('f')], A::CycleFlagFilter, "filter", "flag filter: D/n/!/o"),
        b(&[k('*')], A::MoreLikeThis, "filter", "more like this (arroy)"),
        b(&[k('c')], A::ClearFilters, "filter", "clear filters"),
        b(&[code(C::Tab)], A::NextSpace, "view", "next embedding space"),
        b(&[k('v')], A::SideBySide, "view", "both projections"),
        b(&[k('+'), k('=')], A::ZoomIn, "view", "zoom in"),
        b(&[k('-')], A::ZoomOut, "view", "zoom out"),
        b(&[k('H')], A::Pan(-0.2, 0.0), "view", "pan left"),
        b(&[k('L')], A::Pan(0.2, 0.0), "view", "pan right"),
        b(&[k('K')], A::Pan(0.0, 0.2), "view", "pan up"),
        b(&[k('J')], A::Pan(0.0, -0.2), "view", "pan down"),
        b(&[k('0')], A::ResetView, "view", "reset zoom and pan"),
        b(&[k('F')], A::DriftView, "drift", "drift: series or base→tuned"),
        b(&[k('[')], A::Scrub(-1), "drift", "previous checkpoint"),
        b(&[k(']')], A::Scrub(1), "drift", "next checkpoint"),
        b(&[k('P')], A::Play, "drift", "play / stop the checkpoints"),
        b(&[k('R')], A::Refresh, "view", "reread the store"),
        b(&[k('?')], A::Help, "view", "this help"),
        b(&[code(C::Esc)], A::Escape, "view", "close, clear marks"),
        b(&[k('q'), ctrl('c')], A::Quit, "view", "quit"),
    ]
});

pub fn key_name(key: &Key) -> String {
    let base = match key.code {
        KeyCode::Char(' ') => "Space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Enter => "Enter".into(),
        other => format!("{other:?}"),
    };
    if key.ctrl { format!("C-{base}") } else { base }
}

/// The action a key asks for in the given mode, if any.
pub fn action(mode: &Mode, ev: KeyEvent) -> Option<Action> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && ev.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match mode {
        Mode::Normal => {
            let key = Key { code: ev.code, ctrl };
            NORMAL.iter().find(|b| b.keys.contains(&key)).map(|b| b.action.clone())
        }
        Mode::Help => Some(Action::Escape),
        Mode::Input { .. } => match ev.code {
            KeyCode::Enter => Some(Action::Confirm),
            KeyCode::Esc => Some(Action::Escape),
            KeyCode::Backspace => Some(Action::Backspace),
            KeyCode::Char(c) if !ctrl => Some(Action::Char(c)),
            _ => None,
        },
        Mode::Picker { .. } => match ev.code {
            KeyCode::Enter => Some(Action::Confirm),
            KeyCode::Esc | KeyCode::Char('q') => Some(Action::Escape),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::PickerMove(1)),
            KeyCode::Up | KeyCode::Char('k') => Some(Action::PickerMove(-1)),
            KeyCode::PageDown => Some(Action::PickerMove(10)),
            KeyCode::PageUp => Some(Action::PickerMove(-10)),
            _ => None,
        },
    }
}
