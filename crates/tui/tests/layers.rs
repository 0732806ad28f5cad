//! The browser's modules import one way (the layers in the crate docs): every path a module names through
//! `crate::` or `super::` leads to an earlier layer, and the parts in `state/` never name each other.

use std::path::{Path, PathBuf};

/// The layers, first to last; a module may only name modules of earlier layers.
const LAYERS: &[&[&str]] = &[
    &["action", "mode", "filter", "theme", "data", "layout"],
    &["plot", "keys"],
    &["preview"],
    &["event"],
    &["state"],
    &["app"],
    &["widgets"],
];

fn layer(module: &str) -> usize {
    LAYERS.iter().position(|l| l.contains(&module)).unwrap_or_else(|| panic!("module `{module}` is in no layer"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// The first two segments of every path after `prefix` (`crate::a::b`, `crate::{a::b, c}`).
fn paths(code: &str, prefix: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        let group = if let Some(inner) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = inner
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(inner.len(), |(i, _)| i);
            split_top_level(&inner[..end])
        } else {
            vec![rest.to_string()]
        };
        for item in group {
            let mut segments = item
                .split("::")
                .map(|s| s.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>());
            let first = segments.next().unwrap_or_default();
            if !first.is_empty() {
                found.push((first, segments.next().unwrap_or_default()));
            }
        }
    }
    found
}

fn split_top_level(group: &str) -> Vec<String> {
    let (mut items, mut depth, mut current) = (Vec::new(), 0, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
}

#[test]
fn modules_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") {
            continue; // the crate root runs the loop over everything
        }
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        let module = parts[0].as_str();
        // In `state/list.rs`, the part is `list`; in `state/mod.rs` there is none.
        let part = parts.get(1).map(String::as_str).filter(|p| *p != "mod");
        let code = code(&std::fs::read_to_string(&file).unwrap());
        for (first, second) in paths(&code, "crate::") {
            let ok = if first == module {
                module != "state" || part.is_none() || second.as_str() == part.unwrap_or_default()
            } else {
                layer(&first) < layer(module)
            };
            if !ok {
                wrong.push(format!("{} names crate::{first}::{second}", rel.display()));
            }
        }
        if !paths(&code, "super::").is_empty() {
            // `super` of a top-level module is the crate root; of a part, the other parts.
            let fine = parts.len() > 1 && module != "state";
            if !fine {
                wrong.push(format!("{} names super::", rel.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_grouped_and_nested_paths() {
    let found = paths("use crate::{app::App, state::{list, triage::Said}};\nlet x = crate::plot::cell(r);", "crate::");
    let names: Vec<(&str, &str)> = found.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(names, [("app", "App"), ("state", ""), ("plot", "cell")]);
    assert_eq!(code("use crate::app; // crate::widgets\n#[cfg(test)]\nuse crate::widgets;"), "use crate::app; ");
}
